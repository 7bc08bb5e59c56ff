package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ferrumhq/ferrum/controller/node"
)

// verbs maps the API's provision targets to state machine events.
var verbs = map[string]node.Event{
	"active": node.EvDeploy, "deploy": node.EvDeploy, "rebuild": node.EvRebuild,
	"deleted": node.EvDelete, "undeploy": node.EvDelete,
	"manage": node.EvManage, "provide": node.EvProvide, "inspect": node.EvInspect,
	"clean": node.EvClean, "abort": node.EvAbort, "adopt": node.EvAdopt,
	"rescue": node.EvRescue, "unrescue": node.EvUnrescue, "unhold": node.EvUnhold,
	"service": node.EvService,
}

// maintenanceOps names the operation refused in maintenance, per verb (Ironic's wording).
var maintenanceOps = map[string]string{"active": "provisioning", "deploy": "provisioning",
	"rebuild": "provisioning", "provide": "providing", "clean": "cleaning",
	"rescue": "rescuing", "unrescue": "unrescuing"}

// SetProvisionState starts the provision action req.Target on a node. The new state is
// written by the worker once it has started (the 2016 async proposal): when SetProvisionState
// returns nil the state change is stored and visible; when no worker is free nothing was
// written and the error is node.ErrNoWorker.
func (c *Conductor) SetProvisionState(ctx context.Context, ident string, req ProvisionRequest) error {
	ev, ok := verbs[req.Target]
	if !ok {
		return node.Errorf(node.ErrInvalid, "The requested action %q could not be understood.", req.Target)
	}
	// Like Ironic's API: a verb the current state does not allow on a node that is busy is
	// NodeLocked (409), so clients retry instead of giving up.
	cur, err := c.store.GetNode(ctx, ident)
	if err != nil {
		return err
	}
	if !node.Allowed(cur.ProvisionState, ev) && cur.Reservation != "" && cur.ReservationExpires.After(c.cfg.Now()) {
		return &node.LockedError{Node: cur.UUID, Holder: cur.Reservation}
	}
	n, err := c.lock(ctx, ident)
	if err != nil {
		return err
	}
	spawned := false
	defer func() {
		if !spawned {
			c.unlock(n.UUID)
		}
	}()
	if op, ok := maintenanceOps[req.Target]; ok && n.Maintenance {
		return node.Errorf(node.ErrInvalid, "The %s operation can't be performed on node %s because it's in maintenance mode.", op, n.UUID)
	}
	if n.Protected && (ev == node.EvRebuild || ev == node.EvDelete) {
		return node.Errorf(node.ErrForbidden, "Node %s is protected and cannot be undeployed, rebuilt or deleted", n.UUID)
	}
	var target node.State
	if ev == node.EvClean && n.ProvisionState == node.Manageable {
		target = node.Manageable // manual cleaning returns to manageable
	}
	if ev == node.EvAbort && n.TargetProvisionState != "" {
		target = n.TargetProvisionState
	}
	tr, err := node.Apply(n.ProvisionState, ev, target)
	if err != nil {
		return &node.InvalidStateError{Node: n.UUID, Verb: req.Target, State: n.ProvisionState}
	}
	if ev == node.EvClean && len(req.CleanSteps) == 0 {
		return node.Errorf(node.ErrInvalid, "\"clean_steps\" is required when setting target provision state to clean")
	}
	if ev == node.EvRescue && req.RescuePassword == "" {
		return node.Errorf(node.ErrInvalid, "A non-empty \"rescue_password\" is required when setting target provision state to rescue")
	}
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	if err := c.prevalidate(ctx, n, d, tr.To); err != nil {
		return err
	}
	spawned = true
	return c.startTask(ctx, n, func(n *node.Node) {
		c.enter(n, tr, "")
		n.LastError = ""
		switch ev {
		case node.EvDeploy, node.EvRebuild:
			if req.ConfigDrive != nil {
				n.InstanceInfo["configdrive"] = req.ConfigDrive
			}
			if len(req.DeploySteps) > 0 {
				n.DriverInternalInfo["user_deploy_steps"] = req.DeploySteps
			}
		case node.EvClean:
			n.DriverInternalInfo["clean_steps"] = req.CleanSteps
		case node.EvRescue:
			n.InstanceInfo["rescue_password"] = req.RescuePassword
		case node.EvAbort:
			n.LastError = abortMessage(tr.From, n)
		}
	}, func(ctx context.Context, t *task) { c.run(ctx, t, d) })
}

// prevalidate checks, before anything changes, that the interfaces the action needs exist and
// accept the node (Ironic validates power and deploy before a deploy starts).
func (c *Conductor) prevalidate(ctx context.Context, n *node.Node, d *Driver, to node.State) error {
	need := func(name string, v Validator, ok bool) error {
		if !ok {
			return node.Errorf(node.ErrInvalid, "The %s interface of driver %s does not support this operation on node %s.", name, n.Driver, n.UUID)
		}
		if err := v.Validate(ctx, n); err != nil {
			return node.Errorf(node.ErrInvalid, "Failed to validate %s info for node %s: %v", name, n.UUID, err)
		}
		return nil
	}
	switch to {
	case node.Deploying:
		if err := need("power", d.Power, d.Power != nil); err != nil {
			return err
		}
		return need("deploy", d.Deploy, d.Deploy != nil)
	case node.Inspecting:
		return need("inspect", d.Inspect, d.Inspect != nil)
	case node.Rescuing, node.Unrescuing:
		return need("rescue", d.Rescue, d.Rescue != nil)
	case node.Adopting, node.Cleaning, node.Deleting:
		return need("deploy", d.Deploy, d.Deploy != nil)
	}
	return nil
}

// task is one async operation on a node reserved by this conductor, owned by one worker.
type task struct {
	n *node.Node
}

// startTask spawns a worker that first applies begin to the locked node and saves it, then
// runs run; the lock is released when run returns. The caller hears back once the first save
// is done. If no worker is free, the node is untouched and the error is ErrNoWorker.
func (c *Conductor) startTask(ctx context.Context, n *node.Node, begin func(*node.Node), run func(context.Context, *task)) error {
	started := make(chan error, 1)
	ok := c.spawn(func(wctx context.Context) {
		defer c.unlock(n.UUID)
		t := &task{n: n.Clone()}
		begin(t.n)
		if err := c.save(wctx, t.n); err != nil {
			started <- err
			return
		}
		started <- nil
		defer func() {
			if r := recover(); r != nil {
				c.stats.failed.Add(1)
				c.log.Error().Str("node_id", t.n.UUID).Interface("panic", r).Msg("task panicked")
				c.failTask(wctx, t, fmt.Sprintf("Async execution of the operation on node %s failed: internal error", t.n.UUID))
			}
		}()
		run(wctx, t)
	})
	if !ok {
		c.unlock(n.UUID)
		return node.Errorf(node.ErrNoWorker, "No free conductor workers available")
	}
	select {
	case err := <-started:
		return err
	case <-ctx.Done():
		// The worker still answers on started (buffered); the change may or may not land.
		return ctx.Err()
	}
}

// enter applies a transition to n in memory.
func (c *Conductor) enter(n *node.Node, tr node.Transition, lastError string) {
	n.ProvisionState = tr.To
	n.TargetProvisionState = tr.Target
	n.ProvisionUpdatedAt = c.cfg.Now().UTC()
	if lastError != "" {
		n.LastError = lastError
	}
	c.log.Info().Str("node_id", n.UUID).Str("from", string(tr.From)).Str("to", string(tr.To)).
		Str("event", string(tr.Event)).Msg("provision state changed")
}

// advance applies event e with an optional target override and saves.
func (c *Conductor) advance(ctx context.Context, n *node.Node, e node.Event, target node.State, lastError string) error {
	tr, err := node.Apply(n.ProvisionState, e, target)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.UUID, err)
	}
	c.enter(n, tr, lastError)
	return c.save(ctx, n)
}

// run drives the node through the conductor-side states until it is stable, waiting for a
// callback, held or failed.
func (c *Conductor) run(ctx context.Context, t *task, d *Driver) {
	n := t.n
	ctx = c.withCheckpoint(ctx)
	for {
		if err := ctx.Err(); err != nil {
			c.failTask(context.Background(), t, fmt.Sprintf("The %s operation was interrupted by a shutdown of conductor %s.", n.ProvisionState, c.host))
			return
		}
		next, target, lastErr, stop := c.step(ctx, n, d)
		if next == "" {
			return
		}
		if lastErr != "" {
			c.stats.failed.Add(1)
			c.log.Warn().Str("node_id", n.UUID).Str("state", string(n.ProvisionState)).Str("error", lastErr).Msg("provision step failed")
		}
		if err := c.advance(ctx, n, next, target, lastErr); err != nil {
			c.log.Error().Err(err).Str("node_id", n.UUID).Msg("saving provision state failed")
			return
		}
		if stop {
			return
		}
	}
}

// step performs the work of the node's current state and returns the event that follows
// (empty: nothing to do), a target override, last_error for a failure, and whether to stop.
func (c *Conductor) step(ctx context.Context, n *node.Node, d *Driver) (node.Event, node.State, string, bool) {
	s := n.ProvisionState
	if s.Stable() || s.Failed() || slices.Contains(node.WaitStates, s) {
		return "", "", "", true
	}
	switch s {
	case node.Verifying:
		st, err := d.Power.PowerState(ctx, n)
		if err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to get power state for node %s. Error: %v", n.UUID, err), true
		}
		n.PowerState = st
		return node.EvDone, "", "", true

	case node.Cleaning:
		return c.clean(ctx, n, d)

	case node.Inspecting:
		n.InspectionStartedAt, n.InspectionFinishedAt = c.cfg.Now().UTC(), timeZero
		out, err := d.Inspect.Inspect(ctx, n)
		if err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to inspect hardware. Reason: %v", err), true
		}
		if out == Wait {
			return node.EvWait, "", "", true
		}
		n.InspectionFinishedAt = c.cfg.Now().UTC()
		c.portsFromInventory(ctx, n)
		return node.EvDone, "", "", true

	case node.Deploying:
		out, err := d.Deploy.Deploy(ctx, n)
		if err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to deploy. Error: %v", err), true
		}
		if out == Wait {
			return node.EvWait, "", "", true
		}
		delete(n.DriverInternalInfo, "user_deploy_steps")
		n.DeployStep = node.Step{}
		return node.EvDone, "", "", true

	case node.Deleting:
		if err := d.Deploy.TearDown(ctx, n); err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to tear down. Error: %v", err), true
		}
		n.InstanceInfo = map[string]any{}
		n.InstanceUUID = ""
		delete(n.DriverInternalInfo, "user_deploy_steps")
		return node.EvClean, "", "", false // go on cleaning in the same worker

	case node.Adopting:
		if err := d.Deploy.Adopt(ctx, n); err != nil {
			return node.EvFail, "", fmt.Sprintf("Error while attempting to adopt node %s: %v.", n.UUID, err), true
		}
		return node.EvDone, "", "", true

	case node.Rescuing:
		out, err := d.Rescue.Rescue(ctx, n)
		if err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to rescue node %s: %v", n.UUID, err), true
		}
		if out == Wait {
			return node.EvWait, "", "", true
		}
		return node.EvDone, "", "", true

	case node.Unrescuing:
		delete(n.InstanceInfo, "rescue_password")
		if err := d.Rescue.Unrescue(ctx, n); err != nil {
			return node.EvFail, "", fmt.Sprintf("Failed to unrescue node %s: %v", n.UUID, err), true
		}
		return node.EvDone, "", "", true

	case node.Servicing:
		return node.EvDone, "", "", true
	}
	return "", "", "", true
}

// clean runs automated cleaning (target available) or manual clean steps (target manageable).
func (c *Conductor) clean(ctx context.Context, n *node.Node, d *Driver) (node.Event, node.State, string, bool) {
	manual := n.TargetProvisionState == node.Manageable
	var steps []node.Step
	if manual {
		steps = cleanSteps(n.DriverInternalInfo["clean_steps"])
	} else if !c.automatedClean(n) {
		return node.EvDone, "", "", true
	}
	out, err := d.Deploy.Clean(ctx, n, steps)
	if err != nil {
		msg := fmt.Sprintf("Failed to clean node %s: %v", n.UUID, err)
		if manual {
			return node.EvFail, node.Manageable, msg, true
		}
		// Ironic puts a node whose automated cleaning failed into maintenance.
		n.Maintenance, n.MaintenanceReason, n.Fault = true, msg, node.FaultCleanFailure
		return node.EvFail, "", msg, true
	}
	if out == Wait {
		return node.EvWait, n.TargetProvisionState, "", true
	}
	delete(n.DriverInternalInfo, "clean_steps")
	n.CleanStep = node.Step{}
	if manual {
		return node.EvManage, "", "", true
	}
	return node.EvDone, "", "", true
}

func (c *Conductor) automatedClean(n *node.Node) bool {
	if n.AutomatedClean != nil {
		return *n.AutomatedClean
	}
	return !c.cfg.DisableAutomatedClean
}

// cleanSteps reads clean steps back from driver_internal_info (JSON-decoded or not).
func cleanSteps(v any) []node.Step {
	switch s := v.(type) {
	case []node.Step:
		return s
	case []any:
		out := make([]node.Step, 0, len(s))
		for _, e := range s {
			if m, ok := e.(map[string]any); ok {
				out = append(out, node.Step(m))
			}
		}
		return out
	}
	return nil
}

// failTask moves a node whose worker failed unexpectedly to its failure state.
func (c *Conductor) failTask(ctx context.Context, t *task, msg string) {
	n := t.n
	if !node.Allowed(n.ProvisionState, node.EvFail) {
		n.LastError = msg
		if err := c.save(ctx, n); err != nil {
			c.log.Error().Err(err).Str("node_id", n.UUID).Msg("recording task failure failed")
		}
		return
	}
	if err := c.advance(ctx, n, node.EvFail, "", msg); err != nil {
		c.log.Error().Err(err).Str("node_id", n.UUID).Msg("recording task failure failed")
	}
}

func abortMessage(from node.State, n *node.Node) string {
	switch from {
	case node.CleanWait, node.CleanHold:
		step, _ := n.CleanStep["step"].(string)
		return fmt.Sprintf("By request, the clean operation was aborted for node %s on step %q.", n.UUID, step)
	case node.InspectWait:
		return "Inspection was aborted by request."
	case node.RescueWait:
		return fmt.Sprintf("Rescue operation was aborted for node %s.", n.UUID)
	case node.DeployWait, node.DeployHold:
		return fmt.Sprintf("Deployment was aborted for node %s by request.", n.UUID)
	}
	return fmt.Sprintf("The operation was aborted for node %s by request.", n.UUID)
}

func isNotFound(err error) bool { return errors.Is(err, node.ErrNotFound) }
