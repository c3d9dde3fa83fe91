// ParamLock: readers share it, a writer has it alone, and a waiting writer goes before new
// readers. "Still waiting" is checked after a pause; "got it" by joining the thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "chainrule/param_lock.hpp"

using chainrule::ParamLock;

namespace {

// Long enough for a thread that is not blocked to have taken the lock.
void let_others_run() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

}  // namespace

TEST(ParamLock, ReadersShareIt) {
  ParamLock lock;
  lock.lock_shared();
  std::atomic<bool> second_reader_in{false};
  std::thread reader([&] {
    lock.lock_shared();
    second_reader_in = true;
    lock.unlock_shared();
  });
  reader.join();  // would hang if readers excluded each other
  EXPECT_TRUE(second_reader_in);
  lock.unlock_shared();
}

TEST(ParamLock, WriterWaitsForTheReadersToLeave) {
  ParamLock lock;
  lock.lock_shared();
  std::atomic<bool> writing{false};
  std::thread writer([&] {
    lock.lock();
    writing = true;
    lock.unlock();
  });
  let_others_run();
  EXPECT_FALSE(writing) << "the writer entered while a reader held the lock";
  lock.unlock_shared();
  writer.join();
  EXPECT_TRUE(writing);
}

TEST(ParamLock, ReadersWaitForTheWriter) {
  ParamLock lock;
  lock.lock();
  std::atomic<bool> reading{false};
  std::thread reader([&] {
    ParamLock::SharedGuard guard(lock);
    reading = true;
  });
  let_others_run();
  EXPECT_FALSE(reading) << "a reader entered while the writer held the lock";
  lock.unlock();
  reader.join();
  EXPECT_TRUE(reading);
}

TEST(ParamLock, WaitingWriterGoesBeforeNewReaders) {
  ParamLock lock;
  lock.lock_shared();  // an old reader
  std::atomic<int> order{0}, writer_turn{0}, reader_turn{0};
  std::thread writer([&] {
    lock.lock();
    writer_turn = ++order;
    lock.unlock();
  });
  let_others_run();  // the writer is waiting now
  std::thread reader([&] {
    lock.lock_shared();
    reader_turn = ++order;
    lock.unlock_shared();
  });
  let_others_run();
  EXPECT_EQ(reader_turn, 0) << "a new reader overtook the waiting writer";
  lock.unlock_shared();  // the old reader leaves: the writer first, then the new reader
  writer.join();
  reader.join();
  EXPECT_EQ(writer_turn, 1);
  EXPECT_EQ(reader_turn, 2);
}

TEST(ParamLock, UnlockingWhatIsNotHeldThrows) {
  ParamLock lock;
  EXPECT_THROW(lock.unlock_shared(), std::logic_error);
  EXPECT_THROW(lock.unlock(), std::logic_error);
  lock.lock_shared();
  EXPECT_THROW(lock.unlock(), std::logic_error);
  lock.unlock_shared();
}
