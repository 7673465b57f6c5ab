// Minimal epoll server, the C probe of bench/workload.sh: listens on 0.0.0.0:PORT with
// SO_REUSEPORT (start several: the kernel spreads new connections over them), accepts with
// accept4, holds every connection and reads and discards what arrives. Runs in the current
// network namespace (start it with `lab exec LAB NODE -- server ...`).
//
//   server [-b BACKLOG] PORT        BACKLOG default 65535 (capped by net.core.somaxconn)
//
// Prints "ready" once listening; on SIGTERM/SIGINT prints how many it held. Out of descriptors,
// it stops accepting (the rest wait in the backlog) until a connection closes.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  int backlog = 65535;
  for (int o; (o = getopt(argc, argv, "b:")) != -1;) {
    if (o == 'b' && (backlog = atoi(optarg)) > 0) continue;
    fprintf(stderr, "usage: server [-b BACKLOG] PORT\n");
    return 2;
  }
  if (argc - optind != 1) {
    fprintf(stderr, "usage: server [-b BACKLOG] PORT\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  struct sigaction sa = {.sa_handler = on_signal}; // no SA_RESTART: epoll_wait returns EINTR
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[optind]))};
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, backlog)) {
    perror("listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event le = {.events = EPOLLIN, .data.fd = l}, evs[1024];
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &le);
  int listening = 1;
  long open = 0;
  static char buf[4096];
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    int k = epoll_wait(ep, evs, 1024, 1000);
    for (int i = 0; i < k; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        for (int c; (c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 ||
                    errno == ECONNABORTED || errno == EINTR;) {
          if (c < 0) continue;
          struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
          open++;
        }
        if (errno == EMFILE || errno == ENFILE) { // full: wait for a close
          epoll_ctl(ep, EPOLL_CTL_DEL, l, NULL);
          listening = 0;
        }
        continue;
      }
      ssize_t r; // read and discard until EAGAIN; end of file or error closes
      while ((r = read(fd, buf, sizeof buf)) > 0) {}
      if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);
        open--;
        if (!listening) epoll_ctl(ep, EPOLL_CTL_ADD, l, &le), listening = 1;
      }
    }
  }
  fprintf(stderr, "server: stopped holding %ld connections\n", open);
  return 0;
}
