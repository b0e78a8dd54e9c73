package gateway

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canary-gw/canary/drivers/modbus"
	"github.com/canary-gw/canary/gateway/outbox"
)

// metrics are the gateway's Prometheus series. Counters that the
// components keep themselves (poll, outbox, publisher statistics) are read
// at scrape time by a collector rather than copied on the hot path.
type metrics struct {
	readings     prometheus.Counter
	evalSeconds  prometheus.Histogram
	events       prometheus.Counter
	dropped      prometheus.Counter
	shed         prometheus.Counter
	catchups     prometheus.Counter
	faultHold    prometheus.Gauge
	faultHolds   prometheus.Counter
	faultHeld    prometheus.Gauge
	appendErrors prometheus.Counter
	eventsLost   prometheus.Counter
	commands     *prometheus.CounterVec
	actions      *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, site string) *metrics {
	labels := prometheus.Labels{"site": site}
	m := &metrics{
		readings: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_readings_total",
			Help: "Readings evaluated and committed to the outbox.", ConstLabels: labels}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "canary_batch_commit_seconds",
			Help:        "Time from a poll's response to the end of its evaluation by the core (its wait in the core's queue and the alarm engine; its alarm transitions are committed right after, its readings with the next commit, within tick_every).",
			ConstLabels: labels, Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1}}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_alarm_events_total",
			Help: "Alarm transitions, operator actions and site events the engine emitted, from polls, ticks, commands and restores (each goes to an outbox commit; failed commits are in canary_outbox_append_errors_total).", ConstLabels: labels}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_outbox_dropped_readings_total",
			Help: "Reading batches dropped because the outbox reached max_bytes (alarms are never dropped).", ConstLabels: labels}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_readings_shed_total",
			Help: "Readings evaluated for alarms but not published: the core was behind (overloaded); their batches' seqs are left unused.", ConstLabels: labels}),
		catchups: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_core_catchups_total",
			Help: "Times the core ran its due ticks back to back to catch up with the clock: its next tick more than 2 s past, more than a queue of answers waiting for it, or a command or action result waiting behind them.", ConstLabels: labels}),
		faultHold: prometheus.NewGauge(prometheus.GaugeOpts{Name: "canary_fault_hold",
			Help: "1 while the gateway, overloaded, holds its sensors' comm and bad alarms active (the hold ends once it has run a calm spell without running late; canary_fault_held_alarms counts the alarms held until they are returned), else 0.", ConstLabels: labels}),
		faultHolds: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_fault_holds_total",
			Help: "Times the gateway started holding its sensors' comm and bad alarms because it ran late (overloaded).", ConstLabels: labels}),
		faultHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "canary_fault_held_alarms",
			Help: fmt.Sprintf("Comm and bad alarms kept active by the fault hold after their return fell due: during a hold, and after it until released (at most %d a second).", heldReleasePerSecond), ConstLabels: labels}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_outbox_append_errors_total",
			Help: "Outbox commits that failed.", ConstLabels: labels}),
		eventsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "canary_events_lost_total",
			Help: "Alarm events dropped from memory while the outbox failed for longer than 50 000 of them (their alarms' states are kept and sent).", ConstLabels: labels}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "canary_operator_commands_total",
			Help: "Operator commands by action and result.", ConstLabels: labels}, []string{"action", "result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "canary_interlock_actions_total",
			Help: "Interlock writes by action, operation and result.", ConstLabels: labels}, []string{"action", "op", "result"}),
	}
	reg.MustRegister(m.readings, m.evalSeconds, m.events, m.dropped, m.shed, m.catchups, m.faultHold, m.faultHolds, m.faultHeld, m.appendErrors, m.eventsLost, m.commands, m.actions)
	return m
}

func (m *metrics) observeBatch(b modbus.Batch, commit time.Duration) {
	m.readings.Add(float64(len(b.Readings)))
	m.evalSeconds.Observe(commit.Seconds())
}

// collector exposes the components' own statistics at scrape time.
type collector struct {
	g *Gateway

	polls, pollErrors, timeouts, exceptions, skipped, lateStarts, late, lateAnswers, reconnects, latency, online *prometheus.Desc
	obRecords, obBytes, obAge, published, released, connected                                                    *prometheus.Desc
	alarms                                                                                                       *prometheus.Desc
	queued, queueCap                                                                                             *prometheus.Desc
}

func newCollector(g *Gateway) *collector {
	site := prometheus.Labels{"site": g.site.Site}
	dev := []string{"device"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, site)
	}
	return &collector{
		g:           g,
		polls:       d("canary_device_polls_total", "Polls per device.", dev),
		pollErrors:  d("canary_device_poll_errors_total", "Failed polls per device.", dev),
		timeouts:    d("canary_device_timeouts_total", "Requests that timed out, per device.", dev),
		exceptions:  d("canary_device_exceptions_total", "Modbus exception answers, per device.", dev),
		skipped:     d("canary_device_skipped_ticks_total", "Poll ticks skipped because the link was busy or backing off.", dev),
		lateStarts:  d("canary_device_late_starts_total", "Polls started more than a quarter of the poll period after their tick (or after the link was free): the gateway getting its pollers the CPU late, or holding them while the core takes their batches.", dev),
		late:        d("canary_device_late_polls_total", "Polls abandoned because the gateway itself ran late (overloaded): no readings, neither good nor bad.", dev),
		lateAnswers: d("canary_device_late_answers_total", "Requests whose answer came within the timeout but was read after it, the gateway running late: their readings are good.", dev),
		reconnects:  d("canary_device_reconnects_total", "Link reconnects, per device.", dev),
		latency:     d("canary_device_poll_latency_seconds", "Latency of the device's last successful poll.", dev),
		online:      d("canary_device_online", "1 when the device answered its last poll.", dev),
		obRecords:   d("canary_outbox_records", "Records waiting in the outbox, by lane.", []string{"lane"}),
		obBytes:     d("canary_outbox_bytes", "Bytes waiting in the outbox, by lane.", []string{"lane"}),
		obAge:       d("canary_outbox_oldest_age_seconds", "Age of the oldest record waiting in the outbox, by lane (0 when empty): how far behind delivery is.", []string{"lane"}),
		published:   d("canary_mqtt_published_total", "MQTT PUBLISH packets sent.", nil),
		released:    d("canary_mqtt_released_total", "Outbox records released after delivery.", nil),
		connected:   d("canary_mqtt_connected", "1 while connected to the broker.", nil),
		// Counted by the view as alarms change, read here: a flood's
		// commits do not recount every alarm that is not normal.
		alarms: d("canary_alarms", "Alarms that are not normal, by state and priority.", []string{"state", "priority"}),
		// The hand-over queue's depth: nearly empty, the core keeps up
		// with the pollers (an overload is then the pollers' own: late
		// polls, skipped ticks); full, the core is behind and the pollers
		// wait (docs/performance.md, "The gateway alone past its ceiling").
		queued:   d("canary_core_queued_polls", "Polls read and waiting in the hand-over queue for the core (not those it has already taken from the queue).", nil),
		queueCap: d("canary_core_queue_capacity", "How many polls may wait for the core (about a second of the site's polls); when they are all taken, the pollers wait.", nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.polls, c.pollErrors, c.timeouts, c.exceptions, c.skipped, c.lateStarts, c.late, c.lateAnswers, c.reconnects,
		c.latency, c.online, c.obRecords, c.obBytes, c.obAge, c.published, c.released, c.connected, c.alarms, c.queued, c.queueCap} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.g.polls.Stats() {
		ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(s.Polls), s.Device)
		ch <- prometheus.MustNewConstMetric(c.pollErrors, prometheus.CounterValue, float64(s.Errors), s.Device)
		ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(s.Timeouts), s.Device)
		ch <- prometheus.MustNewConstMetric(c.exceptions, prometheus.CounterValue, float64(s.Exceptions), s.Device)
		ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(s.Skipped), s.Device)
		ch <- prometheus.MustNewConstMetric(c.lateStarts, prometheus.CounterValue, float64(s.LateStarts), s.Device)
		ch <- prometheus.MustNewConstMetric(c.late, prometheus.CounterValue, float64(s.Late), s.Device)
		ch <- prometheus.MustNewConstMetric(c.lateAnswers, prometheus.CounterValue, float64(s.LateAnswers), s.Device)
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(s.Reconnects), s.Device)
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, s.LastLatency.Seconds(), s.Device)
		on := 0.0
		if s.Online {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(c.online, prometheus.GaugeValue, on, s.Device)
	}
	os := c.g.ob.Stats()
	for _, l := range []outbox.Lane{outbox.Alarms, outbox.Readings} {
		ch <- prometheus.MustNewConstMetric(c.obRecords, prometheus.GaugeValue, float64(os.Records[l]), l.String())
		ch <- prometheus.MustNewConstMetric(c.obBytes, prometheus.GaugeValue, float64(os.Bytes[l]), l.String())
		// On the monotonic clock: a step of the wall clock neither hides
		// a stuck lane nor ages every record at once (outbox.ageMarks).
		age, _ := c.g.ob.OldestAge(l)
		ch <- prometheus.MustNewConstMetric(c.obAge, prometheus.GaugeValue, age.Seconds(), l.String())
	}
	ps := c.g.pub.Stats()
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(ps.Published))
	ch <- prometheus.MustNewConstMetric(c.released, prometheus.CounterValue, float64(ps.Released))
	conn := 0.0
	if ps.Connected {
		conn = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, conn)
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(len(c.g.batches)))
	ch <- prometheus.MustNewConstMetric(c.queueCap, prometheus.GaugeValue, float64(cap(c.g.batches)))
	c.g.view.alarmClasses(func(state string, priority, n int) {
		ch <- prometheus.MustNewConstMetric(c.alarms, prometheus.GaugeValue, float64(n), state, strconv.Itoa(priority))
	})
}
