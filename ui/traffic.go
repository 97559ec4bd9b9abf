package ui

import (
	"context"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps"
	"github.com/pgbluegreen/pgbluegreen/ui/poll"
)

// Where the application's writes go, read from the servers on a slow tick
// (PgBouncer's SHOW DATABASES, the roles' LOGIN, read-only settings) and
// said first on the status line, with a symbol and a word.

// TrafficFunc reads where writes go; steps.Monitor.Traffic fits it.
type TrafficFunc func(ctx context.Context) (steps.Traffic, error)

// slowEvery paces the reads that need not follow every second: where the
// traffic is and the schemas' fingerprints.
const slowEvery = 5 * time.Second

// followTraffic follows where writes go for the lag pane's feed in use;
// the status line takes the read itself.
func (m *Model) followTraffic(msg poll.Msg[steps.Traffic]) {
	if msg.Gen != m.ticks.Gen() {
		return
	}
	if msg.Err != nil {
		m.traffic = steps.Traffic{Target: "unknown"}
		return
	}
	m.traffic = msg.Value
	switch msg.Value.Target {
	case "green":
		m.lastFeed = feedReverse
	case "blue":
		m.lastFeed = feedForward
	}
}
