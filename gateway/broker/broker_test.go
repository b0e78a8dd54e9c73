package broker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/gateway/broker"
)

// mochi's test fixtures are dropped at init: every broker test here runs
// without them.
func TestMochiTestFixturesDropped(t *testing.T) {
	require.Nil(t, packets.TPacketData)
}

func start(t *testing.T, o broker.Options) *broker.Broker {
	t.Helper()
	b, stop := startStoppable(t, o)
	t.Cleanup(func() { require.NoError(t, stop(time.Minute)) })
	return b
}

// startStoppable starts a broker and returns it with a stop that cancels
// its Run and waits at most timeout for it to return (an error if it did
// not, or Run's own error).
func startStoppable(t *testing.T, o broker.Options) (*broker.Broker, func(timeout time.Duration) error) {
	t.Helper()
	if o.Log.GetLevel() != zerolog.Disabled { // zerolog.Nop() keeps a test quiet
		o.Log = zerolog.New(zerolog.NewTestWriter(t))
	}
	b, err := broker.New(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	select {
	case <-b.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("broker stopped: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("broker not ready")
	}
	var once sync.Once
	var stopErr error
	return b, func(timeout time.Duration) error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(timeout):
				stopErr = fmt.Errorf("broker.Run did not return %v after its context ended", timeout)
			}
		})
		return stopErr
	}
}

func connect(t *testing.T, url, id, user, pass string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectRetry(false)
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(50) })
	}
	return c, tok.Error()
}

func TestRetainedAndQoS1(t *testing.T) {
	b := start(t, broker.Options{})
	require.Contains(t, b.URL(), "tcp://127.0.0.1:")

	pub, err := connect(t, b.URL(), "pub", "", "")
	require.NoError(t, err)
	tok := pub.Publish("canary/v1/s/alarms/a.b.high", 1, true, `{"state":"unacknowledged"}`)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())

	// A subscriber that arrives later still gets the retained state, and
	// then every QoS 1 message in order.
	sub, err := connect(t, b.URL(), "sub", "", "")
	require.NoError(t, err)
	var mu sync.Mutex
	var got []string
	tok = sub.Subscribe("canary/v1/+/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	for i := range 100 {
		tok := pub.Publish("canary/v1/s/readings/d", 1, false, []byte{byte('0' + i%10)})
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
	}
	// Split what arrived into retained states and live readings.
	split := func() (retained int, live []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			switch {
			case m == `canary/v1/s/alarms/a.b.high {"state":"unacknowledged"}`:
				retained++
			case strings.HasPrefix(m, "canary/v1/s/readings/d "):
				live = append(live, strings.TrimPrefix(m, "canary/v1/s/readings/d "))
			default:
				t.Errorf("unexpected message %q", m)
			}
		}
		return retained, live
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		retained, live := split()
		if (retained >= 1 && len(live) >= 100) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// mochi sends retained states from its own goroutine after the SUBACK,
	// so a live message may overtake them, and it may send one twice (QoS 1
	// is at least once; retained states are idempotent). The readings
	// arrive exactly once each, in order.
	retained, live := split()
	require.GreaterOrEqual(t, retained, 1, "the retained state")
	require.Len(t, live, 100)
	for i, v := range live {
		require.Equal(t, string(rune('0'+i%10)), v, "message %d out of order", i)
	}
	require.Equal(t, int64(0), b.Dropped())
}

func TestLoopbackOnlyWithoutAuth(t *testing.T) {
	_, err := broker.New(broker.Options{Listen: "0.0.0.0:0"})
	require.ErrorContains(t, err, "reachable from the network")
	_, err = broker.New(broker.Options{Listen: "nonsense"})
	require.ErrorContains(t, err, "not host:port")
	_, err = broker.New(broker.Options{Listen: "0.0.0.0:0", Authenticate: func(string, string) bool { return false }})
	require.NoError(t, err)
}

func TestAuthAndACL(t *testing.T) {
	b := start(t, broker.Options{
		Authenticate: func(u, p string) bool { return (u == "gw" && p == "gwpass") || (u == "room" && p == "roompass") },
		// Only the control room may write a cmd topic.
		ACL: func(u, topic string, write bool) bool {
			if write && len(topic) > 4 && topic[len(topic)-4:] == "/cmd" {
				return u == "room"
			}
			return true
		},
	})
	_, err := connect(t, b.URL(), "x", "gw", "wrong")
	require.Error(t, err)

	gw, err := connect(t, b.URL(), "gw", "gw", "gwpass")
	require.NoError(t, err)
	var mu sync.Mutex
	var cmds []string
	tok := gw.Subscribe("canary/v1/s/cmd", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		cmds = append(cmds, string(m.Payload()))
		mu.Unlock()
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())

	// The gateway's own publish to cmd is dropped by the ACL; the control
	// room's arrives.
	// (mochi does not answer a v3 publish the ACL refuses, so its token is
	// not waited on.)
	gw.Publish("canary/v1/s/cmd", 1, false, "from-gw")
	room, err := connect(t, b.URL(), "room", "room", "roompass")
	require.NoError(t, err)
	tok = room.Publish("canary/v1/s/cmd", 1, false, "from-room")
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(cmds)
		mu.Unlock()
		if n >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"from-room"}, cmds)
}
