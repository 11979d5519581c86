package events

import (
	"context"
	"testing"
)

var benchEvent = Event{Kind: CleanupStep, App: "0123456789abcdef", Parent: 12, Value: 3400, Detail: "cgroup"}

// BenchmarkEmit is the cost of one event on the hot path (the issue's
// target is 100 ns).
func BenchmarkEmit(b *testing.B) {
	l := NewLog(DefaultSize)
	b.ReportAllocs()
	for b.Loop() {
		l.Emit(benchEvent)
	}
}

// BenchmarkEmitParallel emits from every P at once (-cpu 2 on these hosts).
func BenchmarkEmitParallel(b *testing.B) {
	l := NewLog(DefaultSize)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Emit(benchEvent)
		}
	})
}

// BenchmarkEmitFollowed emits while a subscriber follows the log (it sleeps
// and is woken whenever it has caught up).
func BenchmarkEmitFollowed(b *testing.B) {
	l := NewLog(DefaultSize)
	sub := l.Subscribe(SubscribeOptions{After: l.Last()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		l.Emit(benchEvent)
	}
	b.StopTimer()
	cancel()
	<-done
	sub.Close()
}

// BenchmarkNext is a subscriber's cost per event replayed from the ring.
func BenchmarkNext(b *testing.B) {
	l := NewLog(DefaultSize)
	for range DefaultSize {
		l.Emit(benchEvent)
	}
	ctx := context.Background()
	sub := l.Subscribe(SubscribeOptions{})
	defer sub.Close()
	b.ReportAllocs()
	for b.Loop() {
		if sub.cursor == l.Last() {
			b.StopTimer()
			sub.cursor = 0
			b.StartTimer()
		}
		if _, err := sub.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
