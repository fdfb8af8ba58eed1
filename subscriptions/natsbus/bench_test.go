package natsbus

import (
	"testing"
	"time"
)

// BenchmarkRelay measures the relay's throughput: b.N changes already in the
// SQLite store, published to the embedded NATS server from a standing start
// (reported as changes/s).
func BenchmarkRelay(b *testing.B) {
	srv := startServer(b)
	bus := openBus(b, srv.ClientURL())
	store := openStore(b)
	bulk(b, store, "p", b.N)
	b.ResetTimer()
	start := time.Now()
	r := startRelay(b, store, bus, 0)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for r.Stats().LastPublished < int64(b.N) {
		<-tick.C
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
}
