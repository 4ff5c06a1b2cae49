// Box decoding and non-maximum suppression of an SSD-lite detector's int8 output on the target,
// step for step as nlpool_keras.detection.anchors does it on the host (decode_boxes, then
// non_max_suppression), in double precision:
//   - row a of the output holds (dx, dy, dw, dh, logit of background, logits of the classes)
//     as int8 codes; value = (code - zero_point) * scale;
//   - box = anchor moved by dx * variance_centre * anchor width (...) and scaled by
//     exp(dw * variance_size); class probabilities = softmax of the logits;
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

inline void decode_box(const NlpoolSsd& p, int32_t anchor, const int8_t* row, double* box) {
  const double x0 = p.anchors[anchor][0], y0 = p.anchors[anchor][1];
  const double x1 = p.anchors[anchor][2], y1 = p.anchors[anchor][3];
  const double centre_x = (x0 + x1) / 2, centre_y = (y0 + y1) / 2, width = x1 - x0, height = y1 - y0;
  const double cx = centre_x + value(p, row[0]) * p.variance_centre * width;
  const double cy = centre_y + value(p, row[1]) * p.variance_centre * height;
  const double w = width * std::exp(value(p, row[2]) * p.variance_size);
  const double h = height * std::exp(value(p, row[3]) * p.variance_size);
  box[0] = cx - w / 2;
  box[1] = cy - h / 2;
  box[2] = cx + w / 2;
  box[3] = cy + h / 2;
}

inline double probability(const NlpoolSsd& p, const int8_t* row, int32_t label) {
  const int8_t* logits = row + 4;
  const int32_t count = p.channels - 4;
  double largest = value(p, logits[0]);
  for (int32_t k = 1; k < count; ++k) largest = value(p, logits[k]) > largest ? value(p, logits[k]) : largest;
  double sum = 0;
  for (int32_t k = 0; k < count; ++k) sum += std::exp(value(p, logits[k]) - largest);
  return std::exp(value(p, logits[label + 1]) - largest) / sum;
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

// Decodes one image's (anchor_count, channels) int8 output into at most p.max_detections boxes
// in `detections`, best first; `candidates` (p.candidates entries) and `suppressed`
// (p.candidates bytes) are scratch. Returns the count.
inline int32_t nlpool_decode_ssd(const NlpoolSsd& p, const int8_t* output, NlpoolBox* detections,
                                 NlpoolBox* candidates, uint8_t* suppressed) {
  const double logit = std::log(p.score_threshold / (1 - p.score_threshold));
  const int32_t margin = static_cast<int32_t>(std::floor(logit / p.scale)) - 1;
  int32_t found = 0;
  for (int32_t label = 0; label < p.channels - 5; ++label) {
    int32_t size = 0;
    for (int32_t anchor = 0; anchor < p.anchor_count; ++anchor) {
      const int8_t* row = output + anchor * p.channels;
      if (row[5 + label] - row[4] < margin) continue;  // cannot reach the threshold
      NlpoolBox item{label, anchor, nlpool_ssd_detail::probability(p, row, label), {0, 0, 0, 0}};
      if (item.score >= p.score_threshold) nlpool_ssd_detail::insert(candidates, &size, p.candidates, item);
    }
    for (int32_t k = 0; k < size; ++k) {
      nlpool_ssd_detail::decode_box(p, candidates[k].anchor, output + candidates[k].anchor * p.channels, candidates[k].box);
      suppressed[k] = 0;
    }
    for (int32_t k = 0; k < size; ++k) {
      if (suppressed[k]) continue;
      for (int32_t j = k + 1; j < size; ++j) {
        if (nlpool_ssd_detail::iou(candidates[k].box, candidates[j].box) > p.nms_iou) suppressed[j] = 1;
      }
      nlpool_ssd_detail::insert(detections, &found, p.max_detections, candidates[k]);
    }
  }
  return found;
}

#endif  // NLPOOL_SSD_BOXES_H_
