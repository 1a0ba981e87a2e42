package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"erasure"
	"erasure/internal/words"
)

func init() {
	command("webhooks list", "list notifications and their delivery state, newest first: webhooks list [--state pending|delivered|dead] [--request ID] [--subscriber webhook:NAME] [--limit N]", runWebhooksList)
	command("webhooks retry", "send a dead notification again (needs operate): webhooks retry DELIVERY_ID", runWebhooksRetry)
}

func runWebhooksList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("webhooks list", stderr)
	state := fs.String("state", "", "only the deliveries in this state: pending, delivered or dead")
	request := fs.String("request", "", "only the notifications of this request (a unique id prefix will do)")
	subscriber := fs.String("subscriber", "", "only the deliveries of this subscriber, such as webhook:tickets")
	limit := fs.Int("limit", 50, "how many to show (1..1000)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("webhooks list takes flags only")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	f := erasure.OutboxFilter{State: erasure.OutboxState(*state), Subscriber: *subscriber, Limit: *limit}
	if *request != "" {
		if f.Key, err = requestID(ctx, c, *request); err != nil {
			return err
		}
	}
	page, err := c.Deliveries(ctx, f)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tKEY\tSUBSCRIBER\tSTATE\tATTEMPTS\tNEXT/DELIVERED\tLAST ERROR")
	byState := map[erasure.OutboxState]int{}
	for _, m := range page.Deliveries {
		byState[m.State]++
		when := "-"
		switch {
		case m.DeliveredAt != nil:
			when = m.DeliveredAt.Format(time.RFC3339)
		case m.State == erasure.OutboxPending:
			when = m.NextAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Event, m.Key, m.Subscriber, m.State, m.Attempts, when, oneLineText(m.LastError, 80))
	}
	tw.Flush()
	line := words.Count(len(page.Deliveries), "delivery")
	if len(page.Deliveries) > 0 {
		line += fmt.Sprintf(": %d delivered, %d pending, %d dead", byState[erasure.OutboxDelivered], byState[erasure.OutboxPending], byState[erasure.OutboxDead])
	}
	if page.NextAfter > 0 {
		line += " (more: raise --limit)"
	}
	fmt.Fprintln(stdout, line)
	return nil
}

func runWebhooksRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	id, err := oneID("webhooks retry", args, stderr, nil)
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return usageError(fmt.Sprintf("%q is not a delivery id (the ID column of `erasure webhooks list`)", truncateArg(id)))
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	m, err := c.RetryDelivery(ctx, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "delivery %d (%s of %s to %s) is %s again, with fresh attempts\n", m.ID, m.Event, m.Key, m.Subscriber, m.State)
	return nil
}
