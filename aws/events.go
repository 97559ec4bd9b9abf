package aws

import (
	"context"
	"sort"
	"strconv"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// Event is one RDS event of a resource: where RDS says why an upgrade
// did not happen ("Database cluster is in a state that cannot be upgraded").
type Event struct {
	Time    time.Time
	Message string
}

// EventsParams name a resource whose recent events are read.
type EventsParams struct {
	SourceID string
	// SourceType is "db-cluster", "db-instance", "db-snapshot", ...
	SourceType string
	// Minutes back from now; 0 means a day (1440).
	Minutes int
}

func (p EventsParams) minutes() int {
	if p.Minutes <= 0 {
		return 1440
	}
	return p.Minutes
}

// Plan is the call Events makes.
func (p EventsParams) Plan() []PlannedCall {
	return one(call("rds DescribeEvents", "SourceIdentifier", p.SourceID, "SourceType", p.SourceType,
		"Duration", strconv.Itoa(p.minutes())))
}

// Events reads a resource's recent events, oldest first (rds
// DescribeEvents, the first page: the latest event is what matters).
func (c *Client) Events(ctx context.Context, p EventsParams) ([]Event, error) {
	var out *rds.DescribeEventsOutput
	err := c.call(ctx, p.Plan()[0], func(ctx context.Context) error {
		var err error
		out, err = c.rds.DescribeEvents(ctx, &rds.DescribeEventsInput{SourceIdentifier: sdkaws.String(p.SourceID),
			SourceType: rdstypes.SourceType(p.SourceType), Duration: sdkaws.Int32(int32(p.minutes()))})
		return err
	})
	if err != nil {
		return nil, err
	}
	events := make([]Event, 0, len(out.Events))
	for _, e := range out.Events {
		events = append(events, Event{Time: sdkaws.ToTime(e.Date), Message: sdkaws.ToString(e.Message)})
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	return events, nil
}
