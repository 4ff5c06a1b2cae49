// Box decoding and non-maximum suppression of an SSD-lite detector's int8 output on the target,
// step for step as nlpool_keras.detection.anchors does it on the host (decode_boxes, then
// decode_int8_boxes, then non_max_suppression), in double precision:
//   - row a of the output holds (dx, dy, dw, dh, logit of background, logits of the classes)
//     as int8 codes; value = (code - zero_point) * scale;
//   - box = anchor moved by dx * variance_centre * anchor width (...) and scaled by
//     exp(dw * variance_size); class probabilities = softmax of the logits, from the code
//     differences d to the row's largest logit code: exp(d * scale) / sum. Both exponentials
//     come from 256-entry tables filled once (`nlpool_ssd_tables`), none per element;
//   - per class: the boxes scoring at least score_threshold, best first (ties: lower anchor),
//     at most `candidates` of them, greedily suppressed above nms_iou; then the best
//     max_detections of all classes (ties: lower class, then lower anchor).
// A class's probability is computed only where the int8 codes allow it to reach the threshold:
// p_c <= sigmoid(logit_c - logit_background), so an anchor whose code difference is below
// logit(threshold) / scale cannot pass (a necessary condition: the result is unchanged).
#ifndef NLPOOL_SSD_BOXES_H_
#define NLPOOL_SSD_BOXES_H_

#include <cmath>
#include <cstdint>

struct NlpoolBox {
  int32_t label;   // class index, background excluded
  int32_t anchor;  // the output row it comes from
  double score;    // class probability
  double box[4];   // x0, y0, x1, y1 as fractions of the image
};

struct NlpoolSsdTables {
  double size[256];    // exp(((code - zero_point) * scale) * variance_size), code = -128..127
  double weight[256];  // exp(d * scale), d = -255..0
};

struct NlpoolSsd {
  const float (*anchors)[4];  // x0, y0, x1, y1 of each anchor, in output-row order
  int32_t anchor_count, channels;  // channels = 4 + classes + 1
  double scale;
  int32_t zero_point;
  double variance_centre, variance_size, score_threshold, nms_iou;
  int32_t candidates, max_detections;
};

namespace nlpool_ssd_detail {

inline double value(const NlpoolSsd& p, int8_t code) { return static_cast<double>(code - p.zero_point) * p.scale; }

inline void decode_box(const NlpoolSsd& p, const NlpoolSsdTables& t, int32_t anchor, const int8_t* row, double* box) {
  const double x0 = p.anchors[anchor][0], y0 = p.anchors[anchor][1];
  const double x1 = p.anchors[anchor][2], y1 = p.anchors[anchor][3];
  const double centre_x = (x0 + x1) / 2, centre_y = (y0 + y1) / 2, width = x1 - x0, height = y1 - y0;
  const double cx = centre_x + value(p, row[0]) * p.variance_centre * width;
  const double cy = centre_y + value(p, row[1]) * p.variance_centre * height;
  const double w = width * t.size[row[2] + 128];
  const double h = height * t.size[row[3] + 128];
  box[0] = cx - w / 2;
  box[1] = cy - h / 2;
  box[2] = cx + w / 2;
  box[3] = cy + h / 2;
}

inline double probability(const NlpoolSsd& p, const NlpoolSsdTables& t, const int8_t* row, int32_t label) {
  const int8_t* logits = row + 4;
  const int32_t count = p.channels - 4;
  int32_t largest = logits[0];
  for (int32_t k = 1; k < count; ++k) largest = logits[k] > largest ? logits[k] : largest;
  double sum = 0;
  for (int32_t k = 0; k < count; ++k) sum += t.weight[logits[k] - largest + 255];
  return t.weight[logits[label + 1] - largest + 255] / sum;
}

// A bound of a corner in 2^-20 image units, rounded down: boxes whose bounds are apart cannot
// overlap (an integer test before the double one).
inline int32_t grid_floor(double v) {
  const double scaled = std::floor(v * 1048576.0);  // clamped: monotone, so the test stays exact
  return static_cast<int32_t>(scaled < -2e9 ? -2e9 : scaled > 2e9 ? 2e9 : scaled);
}

inline double iou(const double* a, const double* b) {
  const double left = a[0] > b[0] ? a[0] : b[0], top = a[1] > b[1] ? a[1] : b[1];
  const double right = a[2] < b[2] ? a[2] : b[2], bottom = a[3] < b[3] ? a[3] : b[3];
  const double inter_w = right - left > 0 ? right - left : 0, inter_h = bottom - top > 0 ? bottom - top : 0;
  const double inter = inter_w * inter_h;
  const double area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  const double union_area = area_a + area_b - inter;
  return union_area > 0 ? inter / union_area : 0.0;
}

// Whether a comes before b among detections: higher score, then lower class, then lower anchor.
inline bool before(const NlpoolBox& a, const NlpoolBox& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.label != b.label) return a.label < b.label;
  return a.anchor < b.anchor;
}

// Inserts `item` into the sorted `list` of `*size` entries holding at most `capacity`.
inline void insert(NlpoolBox* list, int32_t* size, int32_t capacity, const NlpoolBox& item) {
  int32_t at = *size;
  while (at > 0 && before(item, list[at - 1])) --at;
  if (at >= capacity) return;
  const int32_t last = *size < capacity ? *size : capacity - 1;
  for (int32_t k = last; k > at; --k) list[k] = list[k - 1];
  list[at] = item;
  if (*size < capacity) ++*size;
}

}  // namespace nlpool_ssd_detail

// Fills the exponential tables of `p` (once per model, not per image).
inline void nlpool_ssd_tables(const NlpoolSsd& p, NlpoolSsdTables* t) {
  for (int32_t code = -128; code < 128; ++code) {
    t->size[code + 128] = std::exp(nlpool_ssd_detail::value(p, static_cast<int8_t>(code)) * p.variance_size);
  }
  for (int32_t d = -255; d <= 0; ++d) t->weight[d + 255] = std::exp(static_cast<double>(d) * p.scale);
}

// Decodes one image's (anchor_count, channels) int8 output into at most p.max_detections boxes
// in `detections`, best first; `candidates` (p.candidates entries), `bounds` (4 * p.candidates)
// and `suppressed` (p.candidates bytes) are scratch. Returns the count.
inline int32_t nlpool_decode_ssd(const NlpoolSsd& p, const NlpoolSsdTables& t, const int8_t* output,
                                 NlpoolBox* detections, NlpoolBox* candidates, int32_t* bounds, uint8_t* suppressed) {
  const double logit = std::log(p.score_threshold / (1 - p.score_threshold));
  const int32_t margin = static_cast<int32_t>(std::floor(logit / p.scale)) - 1;
  int32_t found = 0;
  for (int32_t label = 0; label < p.channels - 5; ++label) {
    int32_t size = 0;
    for (int32_t anchor = 0; anchor < p.anchor_count; ++anchor) {
      const int8_t* row = output + anchor * p.channels;
      if (row[5 + label] - row[4] < margin) continue;  // cannot reach the threshold
      NlpoolBox item{label, anchor, nlpool_ssd_detail::probability(p, t, row, label), {0, 0, 0, 0}};
      if (item.score >= p.score_threshold) nlpool_ssd_detail::insert(candidates, &size, p.candidates, item);
    }
    for (int32_t k = 0; k < size; ++k) {
      double* box = candidates[k].box;
      nlpool_ssd_detail::decode_box(p, t, candidates[k].anchor, output + candidates[k].anchor * p.channels, box);
      for (int32_t c = 0; c < 4; ++c) bounds[4 * k + c] = nlpool_ssd_detail::grid_floor(box[c]);
      suppressed[k] = 0;
    }
    for (int32_t k = 0; k < size; ++k) {
      if (suppressed[k]) continue;
      const int32_t* a = bounds + 4 * k;
      for (int32_t j = k + 1; j < size; ++j) {
        const int32_t* b = bounds + 4 * j;
        if (suppressed[j] || a[2] < b[0] || b[2] < a[0] || a[3] < b[1] || b[3] < a[1]) continue;  // apart
        if (nlpool_ssd_detail::iou(candidates[k].box, candidates[j].box) > p.nms_iou) suppressed[j] = 1;
      }
      nlpool_ssd_detail::insert(detections, &found, p.max_detections, candidates[k]);
    }
  }
  return found;
}

#endif  // NLPOOL_SSD_BOXES_H_
