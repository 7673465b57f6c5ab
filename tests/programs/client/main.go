// Command client is the load client of lab's integration tests: a minimal stand-in for the
// load test client of the article lab reproduces. It opens -n TCP connections to one server
// address (at most -inflight connecting at once, at most -rate new connects a second), keeps
// every established one open with one goroutine each, and writes one byte on it every 10 s so a
// dead connection is noticed. The kernel picks each source port (a plain connect, no bind), as
// real load testers do. It is bounded: each of the -n connections is tried exactly once, never
// retried. Once a second it prints how many are established, failed (by kind of error) and
// lost. It exits with status 0 after -hold (counted once every attempt has ended), or on
// SIGTERM or SIGINT when -hold is 0.
//
//	client -target 10.0.0.1:9000 -n 25000 -rate 5000 -timeout 3s -hold 0
//	client -rip 10.0.0.1 -rport 9000 -n 25000
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const pingEvery = 10 * time.Second

var (
	established, lost int64 // connections open now / closed by the other side or the network
	mu                sync.Mutex
	failed            = map[string]int{} // connect failures by kind
)

func main() {
	target := flag.String("target", "", "server address ip:port (or -rip and -rport)")
	rip := flag.String("rip", "", "server host")
	rport := flag.Int("rport", 0, "server port")
	n := flag.Int("n", 1, "connections to open")
	rate := flag.Float64("rate", 0, "new connects per second (0 = unlimited)")
	inflight := flag.Int("inflight", 1000, "connects in flight at most")
	timeout := flag.Duration("timeout", 3*time.Second, "connect timeout")
	hold := flag.Duration("hold", 0, "how long to keep the connections open (0 = until SIGTERM)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("client: ")
	if *target == "" {
		if *rip == "" || *rport == 0 {
			log.Fatal("give -target ip:port, or -rip and -rport")
		}
		*target = net.JoinHostPort(*rip, strconv.Itoa(*rport))
	}
	if *n < 0 || *inflight < 1 {
		log.Fatal("-n must be >= 0 and -inflight >= 1")
	}
	raiseNoFile()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{}) // closed once every attempt has ended
	go connectAll(*target, *n, *rate, *inflight, *timeout, done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var holdUntil <-chan time.Time
	for {
		select {
		case <-tick.C:
			progress("")
		case <-done:
			progress("done: ")
			done = nil
			if *hold > 0 {
				holdUntil = time.After(*hold)
			}
		case <-holdUntil:
			progress("hold over: ")
			return
		case s := <-sig:
			progress(fmt.Sprintf("%v: ", s))
			return
		}
	}
}

// connectAll tries each of the n connections once, then closes done.
func connectAll(target string, n int, rate float64, inflight int, timeout time.Duration, done chan struct{}) {
	var pace <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		pace = t.C
	}
	slots := make(chan struct{}, inflight)
	var attempts sync.WaitGroup
	d := net.Dialer{Timeout: timeout}
	for i := 0; i < n; i++ {
		if pace != nil {
			<-pace
		}
		slots <- struct{}{}
		attempts.Add(1)
		go func() {
			conn, err := d.Dial("tcp", target)
			<-slots
			attempts.Done()
			if err != nil {
				mu.Lock()
				failed[kind(err)]++
				mu.Unlock()
				return
			}
			atomic.AddInt64(&established, 1)
			keep(conn)
		}()
	}
	attempts.Wait()
	close(done)
}

// keep holds one connection open: it waits for the server (which never writes) and pings every
// pingEvery; EOF, a reset or a failed ping mean the connection is gone.
func keep(conn net.Conn) {
	defer conn.Close()
	buf := make([]byte, 1)
	for {
		conn.SetReadDeadline(time.Now().Add(pingEvery))
		_, err := conn.Read(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			if _, err = conn.Write([]byte{'.'}); err == nil {
				continue
			}
		}
		if err == nil {
			continue // the server wrote something: ignore it
		}
		atomic.AddInt64(&established, -1)
		atomic.AddInt64(&lost, 1)
		return
	}
}

// kind names a connect error the way a load test reports it.
func kind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_source_port"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_files"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	}
	return "other"
}

func progress(prefix string) {
	mu.Lock()
	total, kinds := 0, make([]string, 0, len(failed))
	for k, v := range failed {
		total += v
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	mu.Unlock()
	sort.Strings(kinds)
	line := fmt.Sprintf("%sestablished %d failed %d lost %d",
		prefix, atomic.LoadInt64(&established), total, atomic.LoadInt64(&lost))
	if len(kinds) > 0 {
		line += " (" + strings.Join(kinds, ", ") + ")"
	}
	fmt.Println(line)
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit: one descriptor per connection.
func raiseNoFile() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		log.Printf("getrlimit: %v", err)
		return
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		log.Printf("setrlimit: %v", err)
	}
}
