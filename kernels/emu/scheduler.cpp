// Scheduler of the CUDA device emulation: runs a grid's blocks on a pool of OS threads, one block
// per thread at a time, and each CUDA thread of a block as a fiber (boost.context fcontext).
// A fiber runs until it returns or reaches a barrier or warp collective. A thread that returns
// without waiting hands its stack to the next thread, so barrier-free kernels use one stack per
// worker and cost little more than a loop. Barriers release their threads into a ready queue in
// the schedule order (forward, reverse or seeded random), which is the schedule fuzzing.
// Faults found while running are thrown inside the faulting fiber, caught at its entry, and
// the other suspended fibers are unwound through their own frames before launch rethrows.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/context/detail/fcontext.hpp>

#include "engine/error.h"
#include "kernels/emu/device.h"
#include "kernels/emu/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace dsn::emu {
namespace {

namespace fctx = boost::context::detail;
using detail::BlockReduce;
using detail::WarpOp;

// CUDA gives a thread about 1 KiB of stack; fibers need far more for host frames, and ASan's
// instrumented frames are several times larger.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kStackBytes = 512 * 1024;
#else
constexpr std::size_t kStackBytes = 64 * 1024;
#endif

// --- AddressSanitizer fiber annotations; no-ops in other builds -------------------------------
void start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}

void finish_switch(void* fake_stack_save, const void** bottom_old, std::size_t* size_old) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save, (void)bottom_old, (void)size_old;
#endif
}

// A fiber stack with an inaccessible guard page below it, so an overflow faults at once.
class Stack {
 public:
  Stack() : page_(std::size_t(sysconf(_SC_PAGESIZE))) {
    mapping_ = mmap(nullptr, kStackBytes + page_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapping_ == MAP_FAILED) {
      fail(fmt::format("device emulation: mmap of a {} byte fiber stack failed: {}", kStackBytes,
                       std::strerror(errno)));
    }
    mprotect(mapping_, page_, PROT_NONE);
  }
  ~Stack() { munmap(mapping_, kStackBytes + page_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  char* bottom() const { return static_cast<char*>(mapping_) + page_; }
  char* top() const { return bottom() + kStackBytes; }

 private:
  std::size_t page_;
  void* mapping_;
};

enum class State : std::uint8_t { not_started, running, waiting, done };

class Block;

struct Thread {
  Block* block = nullptr;
  uint3 idx{};
  unsigned linear = 0, warp = 0, lane = 0;
  State state = State::not_started;
  bool unwind = false;  // set after a fault: the thread throws ForcedUnwind when resumed
  fctx::fcontext_t context = nullptr;
  Stack* stack = nullptr;
  void* fake_stack = nullptr;  // ASan's fake stack of this fiber while it is suspended
  // Operands and result of the barrier or warp collective the thread waits in.
  WarpOp op = WarpOp::sync;
  std::uint64_t value = 0, result = 0;
  int operand = 0, width = 32;
};

struct PendingCollective {
  unsigned mask, arrived;
  WarpOp op;
};

struct Warp {
  unsigned existing = 0, exited = 0;  // lane masks
  std::vector<PendingCollective> pending;
};

struct ForcedUnwind {};

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::sync:
      return "__syncwarp";
    case WarpOp::shfl:
      return "__shfl_sync";
    case WarpOp::shfl_up:
      return "__shfl_up_sync";
    case WarpOp::shfl_down:
      return "__shfl_down_sync";
    case WarpOp::shfl_xor:
      return "__shfl_xor_sync";
    case WarpOp::ballot:
      return "__ballot_sync";
    case WarpOp::any:
      return "__any_sync";
    case WarpOp::all:
      return "__all_sync";
  }
  return "warp collective";
}

std::string format_dim(const dim3& d) {
  return fmt::format("({}, {}, {})", d.x, d.y, d.z);
}
std::string format_dim(const uint3& d) {
  return fmt::format("({}, {}, {})", d.x, d.y, d.z);
}

// Formats sorted thread indices as ranges: "0-31, 64-95".
std::string format_ranges(const std::vector<unsigned>& sorted) {
  std::string text;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    text += text.empty() ? "" : ", ";
    text += i == j ? fmt::format("{}", sorted[i]) : fmt::format("{}-{}", sorted[i], sorted[j]);
    i = j + 1;
  }
  return text;
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The grid being run, shared by all workers.
struct Launch {
  const detail::LaunchSite* site;
  detail::KernelThunk thunk;
  const void* closure;
  Schedule schedule;
  std::uint64_t block_count;
  std::atomic<std::uint64_t> next_block{0};
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::uint64_t error_block = ~0ULL;

  std::string describe() const {
    return fmt::format("kernel launched at {}:{} with grid {} and block {}", site->file, site->line,
                       format_dim(site->grid), format_dim(site->block));
  }
};

thread_local Thread* current_thread = nullptr;
void fiber_entry(fctx::transfer_t from);

// One block of CUDA threads and their fibers; each worker reuses one Block for all its blocks.
class Block {
 public:
  void run(Launch& launch, std::uint64_t linear_index);

  void record_error(std::exception_ptr error) {
    if (!error_) error_ = std::move(error);
  }
  [[noreturn]] void fault(const Thread& t, const std::string& what) const {
    fail(fmt::format("{} [thread {} of block {}, {}]", what, format_dim(t.idx),
                     format_dim(context_.block_idx), launch_->describe()));
  }

  int block_barrier(Thread& t, int predicate, BlockReduce reduce);
  std::uint64_t warp_collective(Thread& t, WarpOp op, unsigned mask, std::uint64_t value,
                                int operand, int width);
  unsigned active_mask(const Thread& t) const {
    return warps_[t.warp].existing & ~warps_[t.warp].exited;
  }

  friend void fiber_entry(fctx::transfer_t from);

 private:
  void resume(Thread& t);
  void suspend(Thread& t);
  void on_thread_exit(Thread& t);
  void release(unsigned first_linear, unsigned lane_mask, unsigned count);
  void compute_collective(Thread& caller, unsigned mask, WarpOp op);
  std::string deadlock_report() const;
  Stack* acquire_stack();

  Launch* launch_ = nullptr;
  BlockContext context_{};
  std::vector<Thread> threads_;
  std::vector<Warp> warps_;
  std::vector<unsigned> ready_, order_;
  std::size_t ready_head_ = 0;
  unsigned finished_ = 0, barrier_arrived_ = 0, barrier_count_ = 0;
  std::exception_ptr error_;
  std::uint64_t rng_ = 0;
  fctx::fcontext_t scheduler_context_ = nullptr;
  void* scheduler_fake_stack_ = nullptr;
  const void* scheduler_stack_bottom_ = nullptr;
  std::size_t scheduler_stack_size_ = 0;
  std::vector<std::unique_ptr<Stack>> stacks_;
  std::vector<Stack*> free_stacks_;
};

Stack* Block::acquire_stack() {
  if (free_stacks_.empty()) {
    stacks_.push_back(std::make_unique<Stack>());
    return stacks_.back().get();
  }
  Stack* stack = free_stacks_.back();
  free_stacks_.pop_back();
  return stack;
}

void Block::resume(Thread& t) {
  current_thread = &t;
  detail::current_thread_idx = &t.idx;
  t.state = State::running;
  start_switch(&scheduler_fake_stack_, t.stack->bottom(), kStackBytes);
  const fctx::transfer_t back = fctx::jump_fcontext(t.context, &t);
  finish_switch(scheduler_fake_stack_, nullptr, nullptr);
  t.context = back.fctx;
  current_thread = nullptr;
}

void Block::suspend(Thread& t) {
  start_switch(&t.fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
  const fctx::transfer_t back = fctx::jump_fcontext(scheduler_context_, nullptr);
  finish_switch(t.fake_stack, nullptr, nullptr);
  scheduler_context_ = back.fctx;
  if (t.unwind) throw ForcedUnwind{};
}

// Entry of every fiber. Nothing may propagate out of it: fcontext has no caller to return to.
void fiber_entry(fctx::transfer_t from) {
  Thread& t = *static_cast<Thread*>(from.data);
  Block& block = *t.block;
  block.scheduler_context_ = from.fctx;
  finish_switch(nullptr, &block.scheduler_stack_bottom_, &block.scheduler_stack_size_);
  try {
    block.launch_->thunk(block.launch_->closure);
  } catch (const ForcedUnwind&) {
  } catch (...) {
    block.record_error(std::current_exception());
  }
  try {
    block.on_thread_exit(t);
  } catch (...) {
    block.record_error(std::current_exception());
  }
  start_switch(nullptr, block.scheduler_stack_bottom_, block.scheduler_stack_size_);
  fctx::jump_fcontext(block.scheduler_context_, nullptr);
  std::abort();  // a finished fiber is never resumed
}

// Appends `count` threads to the ready queue in schedule order: either the whole block
// (lane_mask 0) or the lanes of lane_mask in the warp starting at first_linear.
void Block::release(unsigned first_linear, unsigned lane_mask, unsigned count) {
  order_.clear();
  for (unsigned i = 0; i < count; ++i) {
    if (lane_mask == 0) {
      order_.push_back(first_linear + i);
    } else if (lane_mask & (1u << i)) {
      order_.push_back(first_linear + i);
    }
  }
  switch (launch_->schedule.order) {
    case ScheduleOrder::forward:
      break;
    case ScheduleOrder::reverse:
      std::reverse(order_.begin(), order_.end());
      break;
    case ScheduleOrder::random:
      for (std::size_t i = order_.size(); i > 1; --i) {
        std::swap(order_[i - 1], order_[splitmix64(rng_) % i]);
      }
      break;
  }
  ready_.insert(ready_.end(), order_.begin(), order_.end());
}

int Block::block_barrier(Thread& t, int predicate, BlockReduce reduce) {
  const auto n = unsigned(threads_.size());
  if (finished_ > 0) {
    fault(t, fmt::format("__syncthreads reached after {} of the block's {} threads returned; every "
                         "thread of the block must reach each barrier",
                         finished_, n));
  }
  t.state = State::waiting;
  barrier_count_ += predicate != 0;
  if (++barrier_arrived_ == n) {
    int result = 0;
    switch (reduce) {
      case BlockReduce::none:
        break;
      case BlockReduce::count:
        result = int(barrier_count_);
        break;
      case BlockReduce::all:
        result = barrier_count_ == n;
        break;
      case BlockReduce::any:
        result = barrier_count_ > 0;
        break;
    }
    for (Thread& other : threads_) other.result = std::uint64_t(result);
    barrier_arrived_ = 0;
    barrier_count_ = 0;
    release(0, 0, n);
  }
  suspend(t);
  return int(t.result);
}

std::uint64_t Block::warp_collective(Thread& t, WarpOp op, unsigned mask, std::uint64_t value,
                                     int operand, int width) {
  Warp& warp = warps_[t.warp];
  const unsigned bit = 1u << t.lane;
  if ((mask & bit) == 0) {
    fault(t, fmt::format("{} called with mask {:#010x}, which does not include the calling lane {}",
                         op_name(op), mask, t.lane));
  }
  if (mask & ~warp.existing) {
    fault(t, fmt::format("{} mask {:#010x} names lanes {:#010x} that do not exist: warp {} of a "
                         "block of {} threads has lanes {:#010x}",
                         op_name(op), mask, mask & ~warp.existing, t.warp, threads_.size(),
                         warp.existing));
  }
  if (mask & warp.exited) {
    fault(t, fmt::format("{} mask {:#010x} names lanes {:#010x} that already returned", op_name(op),
                         mask, mask & warp.exited));
  }
  if (width < 1 || width > warpSize || (width & (width - 1)) != 0) {
    fault(t, fmt::format("{} width {} is invalid: it must be a power of 2 up to 32", op_name(op),
                         width));
  }
  t.op = op;
  t.value = value;
  t.operand = operand;
  t.width = width;
  if (mask == bit) {
    compute_collective(t, mask, op);
    return t.result;
  }

  auto pending = std::find_if(warp.pending.begin(), warp.pending.end(),
                              [mask](const PendingCollective& p) { return p.mask == mask; });
  if (pending == warp.pending.end()) {
    warp.pending.push_back({mask, 0, op});
    pending = warp.pending.end() - 1;
  } else if (pending->op != op) {
    fault(t, fmt::format("lanes of warp {} with mask {:#010x} reached different collectives: {} "
                         "and {}",
                         t.warp, mask, op_name(pending->op), op_name(op)));
  }
  pending->arrived |= bit;
  t.state = State::waiting;
  if (pending->arrived == mask) {
    warp.pending.erase(pending);
    compute_collective(t, mask, op);
    release(t.warp * 32, mask, 32);
  }
  suspend(t);
  return t.result;
}

// Computes the result of every lane of a completed collective from the lanes' operands.
void Block::compute_collective(Thread& caller, unsigned mask, WarpOp op) {
  Thread* lanes = &threads_[caller.warp * 32];
  std::uint64_t ballot = 0;
  for (unsigned lane = 0; lane < 32; ++lane) {
    if ((mask & (1u << lane)) && lanes[lane].value != 0) ballot |= 1ull << lane;
  }
  for (unsigned lane = 0; lane < 32; ++lane) {
    if ((mask & (1u << lane)) == 0) continue;
    Thread& t = lanes[lane];
    const unsigned width = unsigned(t.width);
    const unsigned segment = lane & ~(width - 1);
    const unsigned in_segment = lane & (width - 1);
    unsigned source = lane;
    switch (op) {
      case WarpOp::sync:
        t.result = 0;
        continue;
      case WarpOp::ballot:
        t.result = ballot;
        continue;
      case WarpOp::any:
        t.result = ballot != 0;
        continue;
      case WarpOp::all:
        t.result = ballot == mask;
        continue;
      case WarpOp::shfl:
        source = segment + (unsigned(t.operand) & (width - 1));
        break;
      case WarpOp::shfl_up:
        source = in_segment >= unsigned(t.operand) ? lane - unsigned(t.operand) : lane;
        break;
      case WarpOp::shfl_down:
        source = in_segment + unsigned(t.operand) < width ? lane + unsigned(t.operand) : lane;
        break;
      case WarpOp::shfl_xor:
        source = lane ^ unsigned(t.operand);
        if (source >= segment + width) source = lane;  // later segments return the own value
        break;
    }
    if ((mask & (1u << source)) == 0) {
      fault(caller, fmt::format("lane {} of warp {} reads lane {} through {} with mask {:#010x}, "
                                "which does not include lane {}; the result is undefined on a GPU",
                                lane, caller.warp, source, op_name(op), mask, source));
    }
    t.result = lanes[source].value;
  }
}

void Block::on_thread_exit(Thread& t) {
  t.state = State::done;
  ++finished_;
  Warp& warp = warps_[t.warp];
  warp.exited |= 1u << t.lane;
  if (error_) return;
  if (barrier_arrived_ > 0) {
    fault(t, fmt::format("thread returned while {} threads of the block wait at __syncthreads; "
                         "every thread of the block must reach each barrier",
                         barrier_arrived_));
  }
  for (const PendingCollective& p : warp.pending) {
    if (p.mask & (1u << t.lane)) {
      fault(t, fmt::format("lane {} of warp {} returned while lanes {:#010x} wait in {} with mask "
                           "{:#010x}, which includes it",
                           t.lane, t.warp, p.arrived, op_name(p.op), p.mask));
    }
  }
}

std::string Block::deadlock_report() const {
  std::string report = fmt::format(
      "deadlock in block {} of the {}:", format_dim(context_.block_idx), launch_->describe());
  std::vector<unsigned> at_barrier;
  for (const Thread& t : threads_) {
    const bool in_warp_op =
        std::any_of(warps_[t.warp].pending.begin(), warps_[t.warp].pending.end(),
                    [&](const PendingCollective& p) { return p.arrived & (1u << t.lane); });
    if (t.state == State::waiting && !in_warp_op) at_barrier.push_back(t.linear);
  }
  if (!at_barrier.empty()) {
    report += fmt::format(" {} of {} threads wait at __syncthreads (threads {});",
                          at_barrier.size(), threads_.size(), format_ranges(at_barrier));
  }
  for (std::size_t w = 0; w < warps_.size(); ++w) {
    for (const PendingCollective& p : warps_[w].pending) {
      report += fmt::format(
          " warp {} waits in {} with mask {:#010x}: lanes {:#010x} arrived, "
          "lanes {:#010x} missing;",
          w, op_name(p.op), p.mask, p.arrived, p.mask & ~p.arrived);
    }
  }
  return report +
         " the missing threads wait elsewhere, typically at a barrier or warp "
         "collective inside a divergent branch";
}

void Block::run(Launch& launch, std::uint64_t linear_index) {
  const detail::LaunchSite& site = *launch.site;
  const dim3 g = site.grid, b = site.block;
  launch_ = &launch;
  context_.block_idx = uint3{unsigned(linear_index % g.x), unsigned(linear_index / g.x % g.y),
                             unsigned(linear_index / (std::uint64_t(g.x) * g.y))};
  context_.block_dim = b;
  context_.grid_dim = g;
  // Exactly the requested size, so AddressSanitizer detects overruns. 0xFF bytes read as NaN.
  std::unique_ptr<void, decltype(&std::free)> shared(std::malloc(site.shared_bytes), &std::free);
  if (site.shared_bytes > 0) std::memset(shared.get(), 0xff, site.shared_bytes);
  context_.dynamic_shared = shared.get();

  const unsigned n = b.x * b.y * b.z;
  threads_.assign(n, Thread{});
  warps_.assign((n + 31) / 32, Warp{});
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = threads_[i];
    t.block = this;
    t.idx = uint3{i % b.x, i / b.x % b.y, i / (b.x * b.y)};
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    warps_[t.warp].existing |= 1u << t.lane;
  }
  finished_ = barrier_arrived_ = barrier_count_ = 0;
  error_ = nullptr;
  rng_ = launch.schedule.seed ^ ((linear_index + 1) * 0xd1b54a32d192ed03ULL);
  ready_.clear();
  ready_head_ = 0;
  release(0, 0, n);

  detail::current_block = &context_;
  while (ready_head_ < ready_.size() && !error_) {
    Thread& t = threads_[ready_[ready_head_++]];
    if (ready_head_ == ready_.size()) {
      ready_.clear();
      ready_head_ = 0;
    }
    if (t.state == State::not_started) {
      t.stack = acquire_stack();
      t.context = fctx::make_fcontext(t.stack->top(), kStackBytes, fiber_entry);
    }
    resume(t);
    if (t.state == State::done) free_stacks_.push_back(std::exchange(t.stack, nullptr));
  }
  if (!error_ && finished_ < n) {
    error_ = std::make_exception_ptr(Error(deadlock_report()));
  }
  if (error_) {
    for (Thread& t : threads_) {
      if (t.state != State::waiting) continue;
      t.unwind = true;
      resume(t);
      free_stacks_.push_back(std::exchange(t.stack, nullptr));
    }
  }
  detail::current_block = nullptr;
  detail::current_thread_idx = nullptr;
  if (error_) std::rethrow_exception(error_);
}

// Runs blocks of the launch until none is left or one failed; used by the caller and the pool.
void run_blocks(Launch& launch) {
  thread_local Block block;
  while (!launch.stop.load(std::memory_order_relaxed)) {
    const std::uint64_t index = launch.next_block.fetch_add(1);
    if (index >= launch.block_count) return;
    try {
      block.run(launch, index);
    } catch (...) {
      std::lock_guard lock(launch.error_mutex);
      // Keep the failure of the lowest block index, so reports do not depend on timing.
      if (index < launch.error_block) {
        launch.error_block = index;
        launch.error = std::current_exception();
      }
      launch.stop = true;
    }
  }
}

// Worker threads that run blocks beside the launching thread.
class Pool {
 public:
  explicit Pool(unsigned helpers) {
    for (unsigned i = 0; i < helpers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    start_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  std::size_t size() const { return threads_.size() + 1; }

  void run(Launch& launch) {
    {
      std::lock_guard lock(mutex_);
      job_ = &launch;
      ++generation_;
      busy_ = unsigned(threads_.size());
    }
    start_.notify_all();
    run_blocks(launch);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
    job_ = nullptr;
  }

 private:
  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      Launch* job;
      {
        std::unique_lock lock(mutex_);
        start_.wait(lock, [&] { return quit_ || generation_ != seen; });
        if (quit_) return;
        seen = generation_;
        job = job_;
      }
      run_blocks(*job);
      std::lock_guard lock(mutex_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  Launch* job_ = nullptr;
  std::uint64_t generation_ = 0;
  unsigned busy_ = 0;
  bool quit_ = false;
};

struct Settings {
  std::mutex mutex;  // also serialises launches, because the pool runs one grid at a time
  bool initialised = false;
  Schedule schedule;
  unsigned workers = 2;
  std::unique_ptr<Pool> pool;

  // Reads DSN_EMU_SCHEDULE and DSN_EMU_WORKERS on first use. An invalid value throws, and throws
  // again on every later call, so no launch runs with it.
  void initialise() {
    if (initialised) return;
    if (const char* text = std::getenv("DSN_EMU_SCHEDULE")) schedule = parse_schedule(text);
    if (const char* text = std::getenv("DSN_EMU_WORKERS")) {
      char* end = nullptr;
      const long value = std::strtol(text, &end, 10);
      if (end == text || *end != '\0' || value < 1 || value > 256) {
        fail(fmt::format("DSN_EMU_WORKERS='{}' is invalid: expected a thread count from 1 to 256",
                         text));
      }
      workers = unsigned(value);
    }
    initialised = true;
  }
};

Settings& settings() {
  static Settings instance;
  return instance;
}

Thread& running_thread(const char* what) {
  if (current_thread == nullptr) {
    fail(fmt::format("{} called outside a kernel launched through dsn::cuda::launch", what));
  }
  return *current_thread;
}

}  // namespace

Schedule parse_schedule(const std::string& text) {
  if (text == "forward") return {ScheduleOrder::forward, 0};
  if (text == "reverse") return {ScheduleOrder::reverse, 0};
  if (text == "random") return {ScheduleOrder::random, 1};
  if (text.rfind("random:", 0) == 0 && text.size() > 7) {
    char* end = nullptr;
    const unsigned long long seed = std::strtoull(text.c_str() + 7, &end, 10);
    if (*end == '\0') return {ScheduleOrder::random, seed};
  }
  fail(
      fmt::format("DSN_EMU_SCHEDULE='{}' is invalid: expected forward, reverse, random or "
                  "random:<seed>",
                  text));
}

Schedule schedule() {
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  s.initialise();
  return s.schedule;
}

void set_schedule(const Schedule& schedule) {
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  s.initialise();
  s.schedule = schedule;
}

unsigned worker_count() {
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  s.initialise();
  return s.workers;
}

void set_worker_count(unsigned count) {
  DSN_CHECK(count >= 1, "device emulation worker count {} is invalid: expected at least 1", count);
  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  s.initialise();
  s.workers = count;
}

namespace detail {

int block_barrier(int predicate, BlockReduce reduce) {
  Thread& t = running_thread("__syncthreads");
  return t.block->block_barrier(t, predicate, reduce);
}

std::uint64_t warp_collective(WarpOp op, unsigned mask, std::uint64_t value, int operand,
                              int width) {
  Thread& t = running_thread(op_name(op));
  return t.block->warp_collective(t, op, mask, value, operand, width);
}

unsigned active_mask() {
  const Thread& t = running_thread("__activemask");
  return t.block->active_mask(t);
}

void run_kernel(const LaunchSite& site, KernelThunk thunk, const void* closure) {
  const std::string where = fmt::format("kernel launched at {}:{}", site.file, site.line);
  DSN_CHECK(current_block == nullptr, "{}: launching from inside a kernel is not emulated", where);
  const dim3 b = site.block;
  const std::uint64_t threads = std::uint64_t(b.x) * b.y * b.z;
  DSN_CHECK(b.x >= 1 && b.y >= 1 && b.z >= 1 && b.x <= 1024 && b.y <= 1024 && b.z <= 64 &&
                threads <= 1024,
            "{}: invalid block size {}: each dimension must be at least 1, x and y at most 1024, "
            "z at most 64, and the product at most 1024",
            where, format_dim(b));
  const std::size_t shared_limit = max_dynamic_shared_bytes(site.kernel);
  DSN_CHECK(site.shared_bytes <= shared_limit,
            "{}: {} bytes of dynamic shared memory exceed the kernel's limit of {} bytes; raise it "
            "with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes)",
            where, site.shared_bytes, shared_limit);

  Settings& s = settings();
  std::lock_guard lock(s.mutex);
  s.initialise();
  if (!s.pool || s.pool->size() != s.workers) {
    s.pool.reset();
    s.pool = std::make_unique<Pool>(s.workers - 1);
  }
  Launch launch;
  launch.site = &site;
  launch.thunk = thunk;
  launch.closure = closure;
  launch.schedule = s.schedule;
  launch.block_count = std::uint64_t(site.grid.x) * site.grid.y * site.grid.z;
  s.pool->run(launch);
  if (launch.error) std::rethrow_exception(launch.error);
}

void check_pointer_argument(const void* pointer, int index, const LaunchSite& site) {
  if (pointer == nullptr || is_device_range(pointer, 0)) return;
  fail(
      fmt::format("argument {} of the kernel launched at {}:{} is the pointer {}, which is not "
                  "in memory from cudaMalloc; copy host data to the device first",
                  index, site.file, site.line, pointer));
}

}  // namespace detail
}  // namespace dsn::emu
