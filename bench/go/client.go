// The client of the article "The misconception of using Docker to break out of the client's
// 60,000 ports" (Tony Bai, 2021-12-14):
// https://tonybai.com/2021/12/14/the-misconception-of-using-docker-to-break-out-of-6w-ports-of-the-client
// (its source: https://github.com/bigwhite/experiments/tree/master/break-out-of-6w-ports/client/client_with_remoteaddr.go)
//
// As the article shows it: a goroutine per connection, each net.Dial-ing remoteIP:9000 (the
// kernel picks the source port), then writing "ping" every 100 s. The server address comes
// from -rip, as in the article's second version. One addition for bench/workload.sh: -n, the
// number of connections (the article's 25,000 by default), so that a container's 25,000 can be
// split over two processes under a 20,000 open-files limit.
package main

import (
	"flag"
	"fmt"
	"net"
	"time"
)

var remoteIP string
var count int

func init() {
	flag.StringVar(&remoteIP, "rip", "", "remoteIP")
	flag.IntVar(&count, "n", 25000, "connections (not in the article: it has 25000)")
}

func main() {
	flag.Parse()
	for i := 0; i < count; i++ {
		go func() {
			conn, err := net.Dial("tcp", remoteIP+":9000")
			if err != nil {
				fmt.Println("net.Dial error:", err)
				return
			}

			for {
				_, err := conn.Write([]byte("ping"))
				if err != nil {
					fmt.Println("conn.Write error:", err)
					return
				}
				time.Sleep(100 * time.Second)
			}
		}()
	}
	select {}
}
