// The lock on a network's parameters: many readers (predict, evaluate, saving) or one writer
// (a training chunk, set_weights) at a time. Waiting writers go first, so that a stream of
// predictions cannot starve training.
//
// It lives in C++ rather than Python because a one-row prediction takes it: a Python lock
// built from threading.Condition cost 0.6 µs of a 13 µs call, this one about 0.05 µs, and
// it is taken with the GIL released.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stdexcept>

namespace chainrule {

class ParamLock {
 public:
  void lock_shared() {
    std::unique_lock<std::mutex> guard(mutex_);
    readers_may_enter_.wait(guard, [this] { return !writing_ && writers_waiting_ == 0; });
    ++readers_;
  }

  void unlock_shared() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (readers_ == 0) throw std::logic_error("unlock_shared without a reader");
    // Only writers wait for the readers to leave (readers wait only behind a writer).
    if (--readers_ == 0 && writers_waiting_ > 0) writer_may_enter_.notify_one();
  }

  void lock() {
    std::unique_lock<std::mutex> guard(mutex_);
    ++writers_waiting_;
    writer_may_enter_.wait(guard, [this] { return !writing_ && readers_ == 0; });
    --writers_waiting_;
    writing_ = true;
  }

  void unlock() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (!writing_) throw std::logic_error("unlock without a writer");
    writing_ = false;
    if (writers_waiting_ > 0) writer_may_enter_.notify_one();
    else readers_may_enter_.notify_all();
  }

  // The shared side for the length of a scope.
  class SharedGuard {
   public:
    explicit SharedGuard(ParamLock& lock) : lock_(lock) { lock_.lock_shared(); }
    SharedGuard(const SharedGuard&) = delete;
    SharedGuard& operator=(const SharedGuard&) = delete;
    ~SharedGuard() { lock_.unlock_shared(); }

   private:
    ParamLock& lock_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable readers_may_enter_, writer_may_enter_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writing_ = false;
};

}  // namespace chainrule
