// Runs an exported schedule's nlpool::RunSchedule against a trace of the same schedule run in
// TFLM from Python: the image, then every step's inputs and outputs in order. The replay engine
// fills each step's arena with garbage (as a real interpreter would reuse it), checks that the
// runner hands every step exactly the recorded inputs, and answers with the recorded outputs.
// Prints "steps S mismatched_bytes N final_bytes F".
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "schedule_plan.h"

namespace {

std::vector<int8_t> Read(FILE* file, size_t bytes) {
  std::vector<int8_t> data(bytes);
  if (fread(data.data(), 1, bytes, file) != bytes) {
    fprintf(stderr, "trace too short\n");
    exit(2);
  }
  return data;
}

struct Replay {
  FILE* trace;
  int step = 0;
  size_t mismatched = 0;
  std::vector<std::vector<int8_t>> inputs, expected, outputs;

  bool Begin(int model, uint8_t* arena, size_t bytes) {
    const nlpool::Step& s = SCHEDULE_steps[step];
    if (model != s.model) return false;
    memset(arena, 0x5a, bytes);
    inputs.clear();
    expected.clear();
    outputs.clear();
    for (int i = 0; i < s.reads; ++i) {
      size_t size = nlpool::RegionBytes(s.read[i].region, SCHEDULE_buffers[s.read[i].buffer]);
      inputs.emplace_back(size, 0);
      expected.push_back(Read(trace, size));
    }
    for (int i = 0; i < s.writes; ++i) {
      outputs.push_back(Read(trace, nlpool::RegionBytes(s.write[i].region, SCHEDULE_buffers[s.write[i].buffer])));
    }
    return true;
  }
  int8_t* Input(int i) { return inputs[i].data(); }
  bool Invoke() {
    for (size_t i = 0; i < inputs.size(); ++i) {
      for (size_t k = 0; k < inputs[i].size(); ++k) mismatched += inputs[i][k] != expected[i][k];
    }
    ++step;
    return true;
  }
  const int8_t* Output(int i) { return outputs[i].data(); }
};

std::vector<int8_t> image;
size_t final_bytes = 0;

void ReadImage(int8_t* destination, const nlpool::Region& r) {
  const nlpool::Buffer& b = SCHEDULE_buffers[0];
  for (int y = r.row0; y < r.row1; ++y) {
    const size_t row = (size_t)(r.col1 - r.col0) * b.channels;
    memcpy(destination + (y - r.row0) * row, image.data() + ((size_t)y * b.width + r.col0) * b.channels, row);
  }
}

void TakeOutput(int, const int8_t*, size_t bytes) { final_bytes += bytes; }

}  // namespace

int main(int argc, char** argv) {
  FILE* trace = fopen(argv[1], "rb");
  if (trace == nullptr) return 2;
  const nlpool::Buffer& b = SCHEDULE_buffers[0];
  image = Read(trace, (size_t)b.height * b.width * b.channels);
  static uint8_t block[SCHEDULE_block_bytes];
  Replay replay{trace};
  if (!nlpool::RunSchedule(SCHEDULE_steps, SCHEDULE_step_count, SCHEDULE_buffers, block, sizeof(block), replay,
                           ReadImage, TakeOutput)) {
    return 3;
  }
  printf("steps %d mismatched_bytes %zu final_bytes %zu\n", replay.step, replay.mismatched, final_bytes);
  return 0;
}
