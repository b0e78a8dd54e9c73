package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/canary-gw/canary/alerting"
	"github.com/canary-gw/canary/gateway/command"
	"github.com/canary-gw/canary/gateway/httpapi"
)

// backend adapts the gateway to the HTTP API's Backend.
type backend Gateway

func (b *backend) Readings() []httpapi.Reading            { return b.view.readingsList() }
func (b *backend) Alarms() []httpapi.Alarm                { return b.view.alarmList() }
func (b *backend) Devices() []httpapi.Device              { return b.view.deviceList() }
func (b *backend) History(limit int) []httpapi.Transition { return b.view.historyTail(limit) }
func (b *backend) Ready() bool                            { return b.ready.Load() }
func (b *backend) FaultHolds() httpapi.Holds              { return b.view.faultHolds() }

// Command runs an HTTP operator command through the same parser rules as
// the MQTT cmd topic.
func (b *backend) Command(ctx context.Context, c httpapi.Command) error {
	cmd := command.Command{Action: command.Action(c.Action), Alarm: c.Alarm, User: c.User,
		Comment: c.Comment, Duration: c.Duration, OneShot: c.OneShot}
	err := (*Gateway)(b).runCommand(ctx, cmd)
	return httpError(err)
}

// httpError maps engine refusals to the API's status classes.
func httpError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, alerting.ErrUnknownAlarm):
		return fmt.Errorf("%w: %w", httpapi.ErrUnknownAlarm, err)
	case errors.Is(err, alerting.ErrShelveTooLong), errors.Is(err, alerting.ErrOutOfServiceTooLong), errors.Is(err, alerting.ErrBadDuration),
		errors.Is(err, alerting.ErrUserRequired), errors.Is(err, alerting.ErrCommentRequired):
		return fmt.Errorf("%w: %w", httpapi.ErrBadCommand, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	default:
		return fmt.Errorf("%w: %w", httpapi.ErrNotAllowed, err)
	}
}
