// Centroid decoding of a detector's int8 class map, as `nlpool_keras.detection.decode_centroids`
// does it on the host: a cell is positive when its best object class (channels 1.., the first of
// equal codes) has a code of at least `threshold`; 4-connected positive cells of one class form an
// object, reported in the row-major order of its first cell. Everything is integer, so the host
// and the target report the same objects.
//
// An object's centre, as a fraction of the image: x = sum_x / (2 * grid_w * cells),
// y = sum_y / (2 * grid_h * cells), where sum_x = sum over its cells of (2 * col + 1).
#ifndef NLPOOL_CENTROIDS_H_
#define NLPOOL_CENTROIDS_H_

#include <stdint.h>

typedef struct {
  int32_t label;  // class index, background excluded
  int32_t sum_x;  // sum of (2 * col + 1) over the object's cells
  int32_t sum_y;  // sum of (2 * row + 1)
  int32_t cells;
  int32_t score;  // the best code among its cells
} NlpoolCentroid;

// Decodes `scores` (grid_h x grid_w x channels int8, channel 0 background) into at most
// `max_objects` objects; `scratch` holds 3 * grid_h * grid_w + 1 bytes, 2-byte aligned. Returns the object count
// (more than `max_objects` when some did not fit; only the first `max_objects` are written).
static inline int32_t nlpool_decode_centroids(const int8_t* scores, int32_t grid_h, int32_t grid_w, int32_t channels,
                                              int32_t threshold, NlpoolCentroid* objects, int32_t max_objects,
                                              uint8_t* scratch) {
  const int32_t cells = grid_h * grid_w;
  uint8_t* best = scratch;           // best object class of each cell, 255: not positive
  uint16_t* stack = (uint16_t*)(scratch + cells + (cells & 1));  // cells to visit (2-byte aligned)
  for (int32_t i = 0; i < cells; ++i) {
    const int8_t* cell = scores + i * channels;
    int32_t label = 0;
    for (int32_t c = 2; c < channels; ++c) {
      if (cell[c] > cell[label + 1]) label = c - 1;
    }
    best[i] = cell[label + 1] >= threshold ? (uint8_t)label : 255;
  }
  int32_t count = 0;
  for (int32_t start = 0; start < cells; ++start) {
    if (best[start] >= 254) continue;  // not positive, or part of an earlier object
    const uint8_t label = best[start];
    NlpoolCentroid object = {label, 0, 0, 0, -128};
    int32_t top = 0;
    stack[top++] = (uint16_t)start;
    best[start] = 254;  // seen
    while (top > 0) {
      const int32_t i = stack[--top], row = i / grid_w, col = i % grid_w;
      const int8_t code = scores[i * channels + label + 1];
      object.sum_x += 2 * col + 1;
      object.sum_y += 2 * row + 1;
      object.cells += 1;
      if (code > object.score) object.score = code;
      const int32_t neighbours[4] = {row > 0 ? i - grid_w : -1, row < grid_h - 1 ? i + grid_w : -1,
                                     col > 0 ? i - 1 : -1, col < grid_w - 1 ? i + 1 : -1};
      for (int32_t k = 0; k < 4; ++k) {
        const int32_t j = neighbours[k];
        if (j >= 0 && best[j] == label) {
          best[j] = 254;
          stack[top++] = (uint16_t)j;
        }
      }
    }
    if (count < max_objects) objects[count] = object;
    ++count;
  }
  return count;
}

#endif  // NLPOOL_CENTROIDS_H_
