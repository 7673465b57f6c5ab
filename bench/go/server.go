// The server of the article "The misconception of using Docker to break out of the client's
// 60,000 ports" (Tony Bai, 2021-12-14):
// https://tonybai.com/2021/12/14/the-misconception-of-using-docker-to-break-out-of-6w-ports-of-the-client
// (its source: https://github.com/bigwhite/experiments/tree/master/break-out-of-6w-ports/server/server.go)
//
// As the article shows it: listen on 0.0.0.0:9000, a goroutine per connection reading into a
// 10-byte buffer, a mutex-guarded count, and two lines printed per accepted connection.
//
// One deviation, opt-in, for bench/workload.sh: with -reuseport the listener sets SO_REUSEPORT
// (through net.ListenConfig.Control), so several server processes can share the port. A single
// process holds at most its open-files limit (20,000 on the bench machine), below the 75,000 of
// the experiment; the article raised fs.file-max/nr_open and the limit instead. Without the
// flag the program is the article's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"sync"
	"syscall"
)

var reusePort bool

// SO_REUSEPORT on Linux (x86, arm, riscv: asm-generic); package syscall does not define it.
const soReusePort = 0xf

func init() {
	flag.BoolVar(&reusePort, "reuseport", false, "set SO_REUSEPORT on the listener (not in the article)")
}

func listen() (net.Listener, error) {
	if !reusePort {
		return net.Listen("tcp", "0.0.0.0:9000")
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", "0.0.0.0:9000")
}

func main() {
	flag.Parse()
	l, err := listen()
	if err != nil {
		fmt.Println("error listening:", err.Error())
		return
	}
	defer l.Close()
	fmt.Println("listen ok")
	var mu sync.Mutex
	var count int

	for {
		conn, err := l.Accept()
		if err != nil {
			fmt.Println("error accept:", err)
			return
		}

		fmt.Printf("recv conn from [%s]\n", conn.RemoteAddr())
		go func(conn net.Conn) {
			var b = make([]byte, 10)
			for {
				_, err := conn.Read(b)
				if err != nil {
					e, ok := err.(net.Error)
					if ok {
						if e.Timeout() {
							continue
						}
					}

					mu.Lock()
					count--
					mu.Unlock()
					return
				}
			}
		}(conn)

		mu.Lock()
		count++
		mu.Unlock()
		fmt.Println("total count =", count)
	}
	select {}
}
