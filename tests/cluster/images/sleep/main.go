// Command sleep stands in for the upstream puller image's /bin/sleep on the local real node:
// a static binary that takes one Go duration ("720h", "90s", "1.5h") and sleeps that long.
// A bare number is refused, as upstream's sleep refuses it. SIGTERM ends it at once, so a
// pod on the real node stops without waiting out its grace period.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sleep DURATION (for example 90s or 1h)")
		os.Exit(2)
	}
	d, err := time.ParseDuration(os.Args[1])
	if err != nil || d < 0 {
		fmt.Fprintf(os.Stderr, "sleep: %q is not a duration such as 90s or 1h\n", os.Args[1])
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(d):
	case <-stop:
	}
}
