package control_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/canary-gw/canary/internal/testenv"
)

func roomYAML(brokerURL, userHash string) string {
	return fmt.Sprintf(`
mqtt:
  url: %s
  client_id: control-test
http:
  listen: 127.0.0.1:0
  users:
    - name: olga
      role: operator
      password_hash: '%s'
    - name: vic
      role: viewer
      password_hash: '%s'
command_timeout: 5s
`, brokerURL, userHash, userHash)
}

// TestMultiSiteControlRoom: two sites (two simulators, two gateways) on one
// real Mosquitto and one control room. Its API lists both sites' readings
// and alarms, qualified by site; an acknowledgement sent through it reaches
// the right site's gateway and comes back acknowledged; refusals come back
// with the site's reason.
func TestMultiSiteControlRoom(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := hash(t, "s3cret")
	north := startSite(t, "north", broker.URL, h)
	south := startSite(t, "south", broker.URL, h)
	room := startRoom(t, roomYAML(broker.URL, h))

	eventually(t, "both sites' readings in the control room", 15*time.Second, func() bool {
		rs := readings(t, room)
		n, s := rs["north.face-gas/ch4"], rs["south.face-gas/ch4"]
		return n.Value != nil && s.Value != nil && n.Site == "north" && s.Site == "south"
	})
	var devices []struct{ Site, ID, State string }
	eventually(t, "devices online per site", 10*time.Second, func() bool {
		getJSON(t, room+"/api/v1/devices", &devices)
		online := 0
		for _, d := range devices {
			if d.State == "online" {
				online++
			}
		}
		return online == 4
	})

	// Methane at north only: north's alarm, qualified; south stays quiet.
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.2))
	require.NoError(t, south.sim.Hold("face-gas", "ch4", 1.8))
	eventually(t, "alarms of both sites", 10*time.Second, func() bool {
		as := alarms(t, room)
		return as["north.face-gas.ch4.high"].State == "unacknowledged" &&
			as["south.face-gas.ch4.high"].State == "unacknowledged" &&
			as["south.face-gas.ch4.high_high"].State == "unacknowledged"
	})
	as := alarms(t, room)
	require.NotContains(t, as, "north.face-gas.ch4.high_high")
	require.Equal(t, "north", as["north.face-gas.ch4.high"].Site)
	require.Equal(t, "north.face-gas", as["north.face-gas.ch4.high"].Device)
	require.True(t, as["south.face-gas.ch4.high_high"].Active)

	// Acknowledge north's high through the control room. The command on
	// the wire carries the comment as typed, < > & included (docs/mqtt.md:
	// payloads are not HTML-escaped).
	sent := spyCommands(t, broker.URL, "north")
	const comment = "checking the face <A&B>"
	code, body := post(t, room+"/api/v1/alarms/north.face-gas.ch4.high/ack", "olga", "s3cret", `{"comment":"`+comment+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	select {
	case p := <-sent:
		require.Contains(t, string(p), `"action":"ack","alarm":"face-gas.ch4.high","user":"olga","comment":"`+comment+`"}`)
	case <-time.After(5 * time.Second):
		t.Fatal("no command on canary/v1/north/cmd")
	}
	// North's own gateway has it acknowledged by olga...
	eventually(t, "north's gateway acknowledged", 5*time.Second, func() bool {
		a := alarms(t, north.api)["face-gas.ch4.high"]
		return a.State == "acknowledged" && a.AckedBy == "olga" && a.Comment == comment
	})
	// ...the control room sees it come back from the retained topic...
	eventually(t, "control room shows it acknowledged", 5*time.Second, func() bool {
		return alarms(t, room)["north.face-gas.ch4.high"].State == "acknowledged"
	})
	// ...and south's same-named alarm is untouched.
	require.Equal(t, "unacknowledged", alarms(t, south.api)["face-gas.ch4.high"].State)
	require.Equal(t, "unacknowledged", alarms(t, room)["south.face-gas.ch4.high"].State)

	// The audit trail names the operator.
	var hist []struct{ Alarm, Type, User string }
	eventually(t, "ack in the control room's history", 5*time.Second, func() bool {
		getJSON(t, room+"/api/v1/history", &hist)
		for _, e := range hist {
			if e.Alarm == "north.face-gas.ch4.high" && e.Type == "ack" && e.User == "olga" {
				return true
			}
		}
		return false
	})

	// Refusals carry the site's reason and the right status.
	code, body = post(t, room+"/api/v1/alarms/north.face-gas.ch4.high/ack", "olga", "s3cret", `{}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "site north")
	code, body = post(t, room+"/api/v1/alarms/south.face-gas.ch4.high_high/reset", "olga", "s3cret", `{"comment":"too early"}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "condition is still present")
	code, body = post(t, room+"/api/v1/alarms/north.no-such.ch4.high/ack", "olga", "s3cret", `{}`)
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = post(t, room+"/api/v1/alarms/west.face-gas.ch4.high/ack", "olga", "s3cret", `{}`)
	require.Equal(t, http.StatusNotFound, code, body)
	require.Contains(t, body, "no site west")
	code, _ = post(t, room+"/api/v1/alarms/south.face-gas.ch4.high/ack", "olga", "wrong", `{}`)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = post(t, room+"/api/v1/alarms/south.face-gas.ch4.high/ack", "vic", "s3cret", `{}`)
	require.Equal(t, http.StatusForbidden, code, "a viewer may not act")

	// Gas clears at north: its cleared alarm disappears from the control room.
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 0.2))
	eventually(t, "north's high cleared", 10*time.Second, func() bool {
		_, ok := alarms(t, room)["north.face-gas.ch4.high"]
		return !ok
	})

	// A site whose gateway is gone refuses commands at once instead of
	// queueing them for whenever it returns.
	south.stop()
	eventually(t, "south offline", 10*time.Second, func() bool {
		getJSON(t, room+"/api/v1/devices", &devices)
		for _, d := range devices {
			if d.Site == "south" && d.State != "unknown" {
				return false
			}
		}
		return true
	})
	code, body = post(t, room+"/api/v1/alarms/south.face-gas.ch4.high/ack", "olga", "s3cret", `{}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "site south is offline")
}

// TestReconnectForgetsAlarmsClearedMeanwhile cuts the control room's link to
// the broker while an alarm clears at the site. The clear is an empty
// retained payload the control room never sees, so after reconnecting it
// must rebuild its list from the retained states, not keep the stale alarm.
func TestReconnectForgetsAlarmsClearedMeanwhile(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := hash(t, "s3cret")
	north := startSite(t, "north", broker.URL, h)
	link := testenv.StartProxy(t, broker.Addr)
	room := startRoom(t, roomYAML("tcp://"+link.Addr, h))

	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "north high in the control room", 10*time.Second, func() bool {
		return alarms(t, room)["north.face-gas.ch4.high"].State == "unacknowledged"
	})
	code, body := post(t, room+"/api/v1/alarms/north.face-gas.ch4.high/ack", "olga", "s3cret", `{"comment":"seen"}`)
	require.Equal(t, http.StatusOK, code, body)
	eventually(t, "acknowledged", 5*time.Second, func() bool {
		return alarms(t, room)["north.face-gas.ch4.high"].State == "acknowledged"
	})

	link.Cut()
	eventually(t, "control room not ready", 10*time.Second, func() bool {
		resp, err := http.Get(room + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusOK
	})
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 0.2))
	eventually(t, "the alarm cleared at the site", 10*time.Second, func() bool {
		_, ok := alarms(t, north.api)["face-gas.ch4.high"]
		return !ok
	})
	// Meanwhile the control room still shows what it last knew.
	require.Equal(t, "acknowledged", alarms(t, room)["north.face-gas.ch4.high"].State)

	link.Restore()
	eventually(t, "control room ready again", 20*time.Second, func() bool {
		resp, err := http.Get(room + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	eventually(t, "the stale alarm gone", 5*time.Second, func() bool {
		_, ok := alarms(t, room)["north.face-gas.ch4.high"]
		return !ok
	})
	// Live data flows again.
	require.NoError(t, north.sim.Hold("face-gas", "ch4", 0.35))
	eventually(t, "fresh readings", 10*time.Second, func() bool {
		r := readings(t, room)["north.face-gas/ch4"]
		return r.Value != nil && *r.Value > 0.34 && *r.Value < 0.36
	})
}

// A control room started before its broker (a box's boot order) connects
// when the broker comes up (its first connection is tried again, with
// every failure logged, until it succeeds).
func TestRoomConnectsToABrokerThatStartsLater(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	broker.Stop()
	room := startRoom(t, roomYAML(broker.URL, hash(t, "s3cret")))
	ready := func() bool {
		resp, err := http.Get(room + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	time.Sleep(1500 * time.Millisecond)
	require.False(t, ready(), "ready without a broker")
	broker.Restart()
	eventually(t, "control room ready", 30*time.Second, ready)
}

// A control room forwards one-shot shelving and out of service to the
// site: its own API lets only an engineer take an alarm out of service,
// the command on the wire carries one_shot and the expiry, and the site's
// alarms come back shelved and out of service.
func TestControlRoomForwardsOneShotAndOutOfService(t *testing.T) {
	broker := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := hash(t, "s3cret")
	north := startSite(t, "north", broker.URL, h)
	room := startRoom(t, strings.Replace(roomYAML(broker.URL, h), "command_timeout:", fmt.Sprintf(`    - name: erik
      role: engineer
      password_hash: '%s'
command_timeout:`, h), 1))
	sent := spyCommands(t, broker.URL, "north")
	wire := func() string {
		t.Helper()
		select {
		case p := <-sent:
			return string(p)
		case <-time.After(5 * time.Second):
			t.Fatal("no command on canary/v1/north/cmd")
			return ""
		}
	}

	require.NoError(t, north.sim.Hold("face-gas", "ch4", 1.2))
	eventually(t, "north's high in the control room", 15*time.Second, func() bool {
		return alarms(t, room)["north.face-gas.ch4.high"].State == "unacknowledged"
	})
	code, body := post(t, room+"/api/v1/alarms/north.face-gas.ch4.high/shelve", "olga", "s3cret", `{"comment":"purging","one_shot":true}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, wire(), `"action":"shelve","alarm":"face-gas.ch4.high","user":"olga","comment":"purging","one_shot":true}`)
	eventually(t, "north's high shelved", 5*time.Second, func() bool { return alarms(t, north.api)["face-gas.ch4.high"].State == "shelved" })

	code, body = post(t, room+"/api/v1/alarms/north.face-gas.ch4/out_of_service", "olga", "s3cret", `{"comment":"detector swap","duration":"2h"}`)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "needs engineer")
	code, body = post(t, room+"/api/v1/alarms/north.face-gas.ch4/out_of_service", "erik", "s3cret", `{"comment":"detector swap","duration":"2h"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, wire(), `"action":"out_of_service","alarm":"face-gas.ch4","user":"erik","comment":"detector swap","duration":"2h0m0s"}`)
	eventually(t, "north's ch4 alarms out of service", 5*time.Second, func() bool {
		as := alarms(t, north.api)
		return as["face-gas.ch4.high"].State == "out_of_service" && as["face-gas.ch4.high_high"].State == "out_of_service"
	})
	// The site's refusal comes back with its reason: already out of service.
	code, body = post(t, room+"/api/v1/alarms/north.face-gas.ch4/out_of_service", "erik", "s3cret", `{"comment":"again","duration":"2h"}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "already out of service")
	wire()
	code, body = post(t, room+"/api/v1/alarms/north.face-gas.ch4/return_to_service", "erik", "s3cret", `{"comment":"new detector"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, wire(), `"action":"return_to_service"`)
	// Back in service, the high is still under its one-shot shelve: it
	// has not returned yet.
	eventually(t, "north's high back in service, still shelved", 5*time.Second, func() bool {
		return alarms(t, north.api)["face-gas.ch4.high"].State == "shelved"
	})
}

// spyCommands subscribes to a site's cmd topic on the broker until the
// test ends: what a control room sends there.
func spyCommands(t *testing.T, brokerURL, site string) <-chan []byte {
	t.Helper()
	spy := paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID("cmd-spy"))
	require.True(t, spy.Connect().WaitTimeout(10*time.Second))
	t.Cleanup(func() { spy.Disconnect(0) })
	sent := make(chan []byte, 8)
	tok := spy.Subscribe("canary/v1/"+site+"/cmd", 1, func(_ paho.Client, m paho.Message) { sent <- m.Payload() })
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	return sent
}
