// Minimal epoll load client, the C probe of bench/workload.sh: opens N long-lived TCP
// connections to DST:PORT, each bound before connect to the next source port of the slice
// LO-HI (as lab's client agents do), with at most IN_FLIGHT connects in progress, then holds
// them and, every PING seconds, writes "ping" on each. Runs in the current network namespace
// (start it with `lab exec LAB NODE -- client ...`).
//
//   client [-s SRC] [-i IN_FLIGHT] [-p PING_S] DST:PORT N LO-HI
//     SRC        source address to bind (default 0.0.0.0: the kernel picks the address)
//     IN_FLIGHT  connects in progress at once (default 8192, lab's default)
//     PING_S     seconds between pings, 0 = none (default 100, the article's)
//
// Prints "ready" at start and "<established> established <failed> failed in <s> s" once every
// connect has ended; holds the connections until SIGTERM/SIGINT. Per connection it keeps one
// byte (state[fd]); no buffers.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FREE, CONNECTING, ESTABLISHED };
enum { START_BATCH = 512 }; // connects started per loop turn, so completions are not starved

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr, "usage: client [-s SRC] [-i IN_FLIGHT] [-p PING_S] DST:PORT N LO-HI\n");
  exit(2);
}

int main(int argc, char **argv) {
  struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
  long in_flight_max = 8192, ping_s = 100;
  for (int o; (o = getopt(argc, argv, "s:i:p:")) != -1;) {
    if (o == 's' && inet_pton(AF_INET, optarg, &src.sin_addr) == 1) continue;
    else if (o == 'i' && (in_flight_max = atol(optarg)) > 0) continue;
    else if (o == 'p' && (ping_s = atol(optarg)) >= 0) continue;
    usage();
  }
  if (argc - optind != 3) usage();
  char host[64];
  int dport, lo, hi;
  long n = atol(argv[optind + 1]);
  if (sscanf(argv[optind], "%63[^:]:%d", host, &dport) != 2 ||
      inet_pton(AF_INET, host, &dst.sin_addr) != 1 || n <= 0 ||
      sscanf(argv[optind + 2], "%d-%d", &lo, &hi) != 2 || lo < 1 || hi > 65535 || lo > hi)
    usage();
  dst.sin_port = htons(dport);

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  unsigned char *state = calloc(rl.rlim_cur, 1);
  struct sigaction sa = {.sa_handler = on_signal}; // no SA_RESTART: epoll_wait returns EINTR
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int ep = epoll_create1(EPOLL_CLOEXEC), port = lo, maxfd = 0;
  long attempted = 0, in_flight = 0, est = 0, failed = 0;
  struct epoll_event evs[1024];
  double t0 = now(), next_ping = t0 + ping_s;
  int reported = 0;
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    // Start connects: socket, bind to the next free port of the slice, non-blocking connect.
    for (int b = 0; b < START_BATCH && attempted < n && in_flight < in_flight_max; b++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) { attempted++, failed++; continue; }
      for (;;) {
        if (port > hi) { failed += n - attempted; attempted = n; close(fd); fd = -1; break; }
        src.sin_port = htons(port++);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) == 0) break;
        if (errno != EADDRINUSE) { perror("bind"); return 1; }
      }
      if (fd < 0) break;
      attempted++;
      if (connect(fd, (struct sockaddr *)&dst, sizeof dst) && errno != EINPROGRESS) {
        failed++;
        close(fd);
        continue;
      }
      struct epoll_event e = {.events = EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
      state[fd] = CONNECTING;
      in_flight++;
      if (fd > maxfd) maxfd = fd;
    }
    if (!reported && est + failed == n) {
      reported = 1;
      printf("%ld established %ld failed in %.3f s\n", est, failed, now() - t0);
      fflush(stdout);
    }
    if (ping_s > 0 && now() >= next_ping) {
      for (int fd = 0; fd <= maxfd; fd++)
        if (state[fd] == ESTABLISHED) send(fd, "ping", 4, MSG_DONTWAIT | MSG_NOSIGNAL);
      next_ping += ping_s;
    }
    int more = attempted < n && in_flight < in_flight_max;
    int k = epoll_wait(ep, evs, 1024, more ? 0 : 1000);
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd, ev = evs[i].events, err = 0;
      socklen_t len = sizeof err;
      if (state[fd] == CONNECTING) {
        in_flight--;
        if (ev & (EPOLLERR | EPOLLHUP)) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || !(ev & EPOLLOUT)) { failed++, state[fd] = FREE, close(fd); continue; }
        est++, state[fd] = ESTABLISHED;
      }
      if (state[fd] == ESTABLISHED && ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        est--, failed++, state[fd] = FREE, close(fd); // the peer closed or reset it
      }
    }
  }
  fprintf(stderr, "client: stopped holding %ld established, %ld failed, %ld in flight\n", est,
          failed, in_flight);
  return 0;
}
