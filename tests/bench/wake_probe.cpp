// wake_probe: what a wake-up costs on this machine right now, for tests/bench/sync.
//
// fwhad's CPU per entry at 10k flows/s is mostly wake-ups (docs/performance.md, "What limits
// each figure"), and on the lab's guest their price moves for minutes at a time while the
// work per event does not. So the benchmark runs this probe before each cpu run, for both
// systems, and prints what it found beside the figure: a run is then read with the price of
// a wake-up at the time it ran, not only with the load average.
//
//   wake_probe --sleeper-cpu A --waker-cpu B [--period-us P] [--ms M] [--rr PRIO]
//
// Two measurements, one after the other, each M milliseconds (default 500):
//   event_wake_us  a process on CPU A blocks in read() on a pipe; a process on CPU B writes a
//                  byte every P µs (default 100: one event every 100 µs, as at 10k flows/s).
//                  The sleeper's user+system CPU divided by its wake-ups: the shape of the
//                  Master's thread woken by the generator's conntrack events.
//   switch_us      two processes, both on CPU A, pass a byte back and forth through two pipes
//                  (each wakes the other, then blocks). Their CPU divided by the hand-offs:
//                  the shape of the lab's Master handing a frame to the standby on one CPU.
// With --rr, the sleepers run SCHED_RR at PRIO, as fwhad's replication thread does at this
// load. Prints one JSON line; errors go to stderr with exit status 2.
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "wake_probe: %s\n", msg.c_str());
  std::exit(2);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

uint64_t self_cpu_ns() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto ns = [](const timeval& tv) {
    return uint64_t(tv.tv_sec) * 1000000000ull + uint64_t(tv.tv_usec) * 1000ull;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0)
    die("CPU " + std::to_string(cpu) + ": " + strerror(errno));
}

void set_rr(int prio) {
  if (prio <= 0) return;
  sched_param sp{};
  sp.sched_priority = prio;
  if (sched_setscheduler(0, SCHED_RR, &sp) < 0) die(std::string("SCHED_RR: ") + strerror(errno));
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fd[2];
    if (pipe(fd) < 0) die(std::string("pipe: ") + strerror(errno));
    r = fd[0];
    w = fd[1];
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  // Each process keeps only the ends it uses: a reader sees EOF once every writer closed.
  void close_read() {
    close(r);
    r = -1;
  }
  void close_write() {
    close(w);
    w = -1;
  }
};

bool read_byte(int fd) {
  char c;
  for (;;) {
    const ssize_t n = read(fd, &c, 1);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;  // EOF: the other side is done
  }
}

void write_byte(int fd) {
  const char c = 1;
  while (write(fd, &c, 1) < 0 && errno == EINTR) {
  }
}

// A child's result: its CPU and its count, through a pipe to the parent.
struct Result {
  uint64_t cpu_ns = 0;
  uint64_t count = 0;
};

void send_result(int fd, const Result& r) {
  if (write(fd, &r, sizeof r) != ssize_t(sizeof r)) _exit(3);
}

Result take_result(Pipe& result, pid_t child) {
  result.close_write();  // a child that dies before it answers is then an EOF, not a hang
  Result r;
  const ssize_t n = read(result.r, &r, sizeof r);
  int status = 0;
  waitpid(child, &status, 0);
  if (n != ssize_t(sizeof r) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("a probe process failed");
  return r;
}

// The sleeper counts its wake-ups until the waker closes the pipe.
double event_wake_us(int sleeper_cpu, int waker_cpu, uint64_t period_ns, uint64_t dur_ns,
                     int rr) {
  Pipe events, result;
  const pid_t child = fork();
  if (child < 0) die(std::string("fork: ") + strerror(errno));
  if (child == 0) {
    events.close_write();
    result.close_read();
    pin(sleeper_cpu);
    set_rr(rr);
    const uint64_t cpu0 = self_cpu_ns();
    Result r;
    while (read_byte(events.r)) ++r.count;
    r.cpu_ns = self_cpu_ns() - cpu0;
    send_result(result.w, r);
    _exit(0);
  }
  events.close_read();
  pin(waker_cpu);
  // Spins between writes: a sleeping waker would add its own timer's wake-up latency to the
  // period, and its CPU is not what is measured.
  const uint64_t start = now_ns();
  for (uint64_t next = start + period_ns; next < start + dur_ns; next += period_ns) {
    while (now_ns() < next) {
    }
    write_byte(events.w);
  }
  events.close_write();
  const Result r = take_result(result, child);
  return r.count ? double(r.cpu_ns) / 1e3 / double(r.count) : 0.0;
}

// Two processes on one CPU hand a byte back and forth for `dur_ns`.
double switch_us(int cpu, uint64_t dur_ns, int rr) {
  Pipe ping, pong, result;
  const pid_t child = fork();
  if (child < 0) die(std::string("fork: ") + strerror(errno));
  if (child == 0) {
    ping.close_write();
    pong.close_read();
    result.close_read();
    pin(cpu);
    set_rr(rr);
    const uint64_t cpu0 = self_cpu_ns();
    Result r;
    while (read_byte(ping.r)) {
      ++r.count;
      write_byte(pong.w);
    }
    r.cpu_ns = self_cpu_ns() - cpu0;
    send_result(result.w, r);
    _exit(0);
  }
  ping.close_read();
  pong.close_write();
  pin(cpu);
  set_rr(rr);
  const uint64_t cpu0 = self_cpu_ns();
  const uint64_t end = now_ns() + dur_ns;
  uint64_t hand_offs = 0;
  while (now_ns() < end) {
    write_byte(ping.w);
    if (!read_byte(pong.r)) die("the switch partner ended early");
    hand_offs += 2;
  }
  const uint64_t mine = self_cpu_ns() - cpu0;
  ping.close_write();
  const Result r = take_result(result, child);
  return hand_offs ? double(mine + r.cpu_ns) / 1e3 / double(hand_offs) : 0.0;
}

long arg(int argc, char** argv, const char* key, long fallback, long lo, long hi) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], key) != 0) continue;
    char* end = nullptr;
    const long v = std::strtol(argv[i + 1], &end, 10);
    if (!end || *end || v < lo || v > hi)
      die(std::string(key) + ": " + argv[i + 1] + " is not a number in " + std::to_string(lo) +
          ".." + std::to_string(hi));
    return v;
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc % 2 == 0) {
    std::fprintf(stderr,
                 "usage: wake_probe --sleeper-cpu A --waker-cpu B [--period-us P] "
                 "[--ms M] [--rr PRIO]\n");
    return 2;
  }
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k != "--sleeper-cpu" && k != "--waker-cpu" && k != "--period-us" && k != "--ms" &&
        k != "--rr")
      die("unknown option " + k);
  }
  const int sleeper = int(arg(argc, argv, "--sleeper-cpu", -1, 0, CPU_SETSIZE - 1));
  const int waker = int(arg(argc, argv, "--waker-cpu", -1, 0, CPU_SETSIZE - 1));
  if (sleeper < 0 || waker < 0) die("--sleeper-cpu and --waker-cpu are needed");
  const uint64_t period_ns = uint64_t(arg(argc, argv, "--period-us", 100, 10, 1000000)) * 1000;
  const uint64_t dur_ns = uint64_t(arg(argc, argv, "--ms", 500, 10, 60000)) * 1000000;
  const int rr = int(arg(argc, argv, "--rr", 0, 0, 99));
  signal(SIGPIPE, SIG_IGN);
  const double wake = event_wake_us(sleeper, waker, period_ns, dur_ns, rr);
  const double sw = switch_us(sleeper, dur_ns, rr);
  std::printf("{\"event_wake_us\":%.2f,\"switch_us\":%.2f}\n", wake, sw);
  return 0;
}
