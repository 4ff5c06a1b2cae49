// A detector's int8 output decoded on the target and reported, for both runners (the whole
// graph's and the patch schedule's). Built with the export's decoding:
//   -DNLPOOL_CENTROID_THRESHOLD=<int8 code> -DNLPOOL_CENTROID_GRID_H/_W/_CHANNELS=...
//       a centroid map (centroids.h): "nlpool: centroid INPUT LABEL SUM_X SUM_Y CELLS SCORE";
//   -DNLPOOL_SSD (ssd_decoding.h written by the build)
//       an SSD-lite table (ssd_boxes.h): "nlpool: box INPUT LABEL ANCHOR SCORE X0 Y0 X1 Y1", the
//       doubles as the hex of their bits (exact);
// each image also "nlpool: decoded INPUT COUNT TICKS". Without either, nothing is decoded.
#ifndef NLPOOL_DETECTIONS_H_
#define NLPOOL_DETECTIONS_H_

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "board.h"
#include "centroids.h"
#ifdef NLPOOL_SSD
#include "ssd_decoding.h"
#endif

#if defined(NLPOOL_CENTROID_THRESHOLD) || defined(NLPOOL_SSD)
#define NLPOOL_DECODES 1
#endif

namespace nlpool_detections {

constexpr size_t Aligned(size_t bytes) { return (bytes + 7) & ~static_cast<size_t>(7); }

#if defined(NLPOOL_CENTROID_THRESHOLD)
constexpr int32_t kCells = NLPOOL_CENTROID_GRID_H * NLPOOL_CENTROID_GRID_W;  // an object has a cell
constexpr size_t kOutputBytes = static_cast<size_t>(kCells) * NLPOOL_CENTROID_CHANNELS;
constexpr size_t kScratchBytes = Aligned(sizeof(NlpoolCentroid) * kCells) + Aligned(3 * kCells + 2);
#elif defined(NLPOOL_SSD)
constexpr size_t kOutputBytes = static_cast<size_t>(kSsdAnchors) * kSsdChannels;
constexpr size_t kScratchBytes = Aligned(sizeof(NlpoolSsdTables)) + Aligned(sizeof(NlpoolBox) * kSsdCandidates) +
                                 Aligned(sizeof(NlpoolBox) * kSsdMaxDetections) + Aligned(16 * kSsdCandidates) +
                                 Aligned(kSsdCandidates);
#else
constexpr size_t kOutputBytes = 0, kScratchBytes = 0;
#endif

#ifdef NLPOOL_SSD
inline void PrintBits(double value) {
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  printf(" %08lx%08lx", (unsigned long)(bits >> 32), (unsigned long)(bits & 0xffffffffu));
}
#endif

}  // namespace nlpool_detections

// Decodes one image's output (`bytes` of int8) with `scratch` (kScratchBytes, 8-byte aligned)
// and prints its detections; with `fill_tables` the SSD decoder's exponential tables are
// (re)computed first, inside the timed decoding (a scratch that outlives the image keeps them).
// False when the output is not the size the decoding was built for.
inline bool nlpool_report_detections(const int8_t* output, size_t bytes, uint32_t input_index, uint8_t* scratch,
                                     bool fill_tables) {
  using namespace nlpool_detections;
  if (bytes != kOutputBytes) return false;
  const uint64_t begin = ticks_now();
  int32_t count = 0;
#if defined(NLPOOL_CENTROID_THRESHOLD)
  (void)fill_tables;
  NlpoolCentroid* objects = reinterpret_cast<NlpoolCentroid*>(scratch);
  uint8_t* work = scratch + Aligned(sizeof(NlpoolCentroid) * kCells);
  count = nlpool_decode_centroids(output, NLPOOL_CENTROID_GRID_H, NLPOOL_CENTROID_GRID_W, NLPOOL_CENTROID_CHANNELS,
                                  NLPOOL_CENTROID_THRESHOLD, objects, kCells, work);
#elif defined(NLPOOL_SSD)
  NlpoolSsdTables* tables = reinterpret_cast<NlpoolSsdTables*>(scratch);
  uint8_t* at = scratch + Aligned(sizeof(NlpoolSsdTables));
  NlpoolBox* candidates = reinterpret_cast<NlpoolBox*>(at);
  at += Aligned(sizeof(NlpoolBox) * kSsdCandidates);
  NlpoolBox* boxes = reinterpret_cast<NlpoolBox*>(at);
  at += Aligned(sizeof(NlpoolBox) * kSsdMaxDetections);
  int32_t* bounds = reinterpret_cast<int32_t*>(at);
  uint8_t* suppressed = at + Aligned(16 * kSsdCandidates);
  if (fill_tables) nlpool_ssd_tables(nlpool_ssd, tables);
  count = nlpool_decode_ssd(nlpool_ssd, *tables, output, boxes, candidates, bounds, suppressed);
#else
  (void)output, (void)scratch, (void)fill_tables;
#endif
  const uint64_t ticks = ticks_now() - begin;
  printf("nlpool: decoded %lu %ld %llu\n", (unsigned long)input_index, (long)count, (unsigned long long)ticks);
#if defined(NLPOOL_CENTROID_THRESHOLD)
  for (int32_t k = 0; k < count && k < kCells; ++k) {
    const NlpoolCentroid& c = objects[k];
    printf("nlpool: centroid %lu %ld %ld %ld %ld %ld\n", (unsigned long)input_index, (long)c.label, (long)c.sum_x,
           (long)c.sum_y, (long)c.cells, (long)c.score);
  }
#elif defined(NLPOOL_SSD)
  for (int32_t k = 0; k < count; ++k) {
    const NlpoolBox& b = boxes[k];
    printf("nlpool: box %lu %ld %ld", (unsigned long)input_index, (long)b.label, (long)b.anchor);
    PrintBits(b.score);
    for (double v : b.box) PrintBits(v);
    printf("\n");
  }
#endif
  return true;
}

#endif  // NLPOOL_DETECTIONS_H_
