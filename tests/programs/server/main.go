// Command server is the test server of lab's integration tests: a minimal stand-in for the
// load test server of the article lab reproduces. It accepts TCP connections forever, one
// goroutine per connection that reads and discards until EOF, and prints once a second how many
// connections are open. SO_REUSEPORT lets several processes share one port; RLIMIT_NOFILE is
// raised to its hard limit; running out of descriptors (EMFILE) pauses accepting instead of
// exiting. SIGTERM or SIGINT ends it with status 0.
//
//	server -l 0.0.0.0:9000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

const soReusePort = 0xf // SO_REUSEPORT on Linux (not in Go 1.19's syscall package)

func main() {
	addr := flag.String("l", "0.0.0.0:9000", "listen address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("server: ")
	raiseNoFile()

	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	var open int64
	go func() {
		for range time.Tick(time.Second) {
			fmt.Printf("open %d\n", atomic.LoadInt64(&open))
		}
	}()
	go func() {
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// EMFILE, ENFILE, ECONNABORTED...: wait a little, keep serving.
				log.Printf("accept: %v", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			atomic.AddInt64(&open, 1)
			go func() {
				defer atomic.AddInt64(&open, -1)
				defer conn.Close()
				io.Copy(io.Discard, conn) // until EOF or error
			}()
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	ln.Close()
	fmt.Printf("%v: exiting with %d open\n", s, atomic.LoadInt64(&open))
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
