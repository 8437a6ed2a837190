package chat_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/store"
	"github.com/imqtt/imqtt/wire"
)

// readCounter counts the member and group reads of the send path.
type readCounter struct {
	store.Store
	members, groups atomic.Int64
}

func (r *readCounter) GetMember(ctx context.Context, group, user string) (store.Member, error) {
	r.members.Add(1)
	return r.Store.GetMember(ctx, group, user)
}

func (r *readCounter) GetGroup(ctx context.Context, id string) (store.Group, error) {
	r.groups.Add(1)
	return r.Store.GetGroup(ctx, id)
}

// BenchmarkGroupSend: sends to one group of 1,000 members by senders=N
// members at once (no member online: the check, the batch and the
// commit), with the member and group reads the batcher's check made per
// send. The check sees the member's mute and the group's mute and
// disband from rows read once a batch, not once a send.
//
//	go test -run '^$' -bench GroupSend -benchtime 20000x ./chat
func BenchmarkGroupSend(b *testing.B) {
	for _, senders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			st := &readCounter{Store: openStore(b)}
			bigGroup(b, st, 1_000)
			svc := newService(b, st, &msgs{})
			st.members.Store(0)
			st.groups.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + senders - 1) / senders
			for s := range senders {
				user := fmt.Sprintf("u%05d", s+1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						done := make(chan struct{})
						svc.Submit(context.Background(), chat.Sender{User: user}, wire.Send{CMID: fmt.Sprint(i), Group: "big", Type: "text", Body: "hello"},
							func(r chat.Result) {
								if r.Err != nil {
									b.Error(r.Err)
								}
								close(done)
							})
						<-done
					}
				}()
			}
			wg.Wait()
			n := float64(per * senders)
			b.ReportMetric(n/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64(st.members.Load())/n, "member_reads/send")
			b.ReportMetric(float64(st.groups.Load())/n, "group_reads/send")
		})
	}
}
