package node

import (
	"fmt"
	"slices"
)

// State is a provision state, with Ironic's wire string.
type State string

// Provision states (ironic/common/states.py).
const (
	NoState      State = ""
	Enroll       State = "enroll"
	Verifying    State = "verifying"
	Manageable   State = "manageable"
	Available    State = "available"
	Active       State = "active"
	ErrorState   State = "error"
	Rescue       State = "rescue"
	Deploying    State = "deploying"
	DeployWait   State = "wait call-back"
	DeployHold   State = "deploy hold"
	DeployFail   State = "deploy failed"
	Deleting     State = "deleting"
	Cleaning     State = "cleaning"
	CleanWait    State = "clean wait"
	CleanHold    State = "clean hold"
	CleanFail    State = "clean failed"
	Inspecting   State = "inspecting"
	InspectWait  State = "inspect wait"
	InspectFail  State = "inspect failed"
	Adopting     State = "adopting"
	AdoptFail    State = "adopt failed"
	Rescuing     State = "rescuing"
	RescueWait   State = "rescue wait"
	RescueFail   State = "rescue failed"
	Unrescuing   State = "unrescuing"
	UnrescueFail State = "unrescue failed"
	Servicing    State = "servicing"
	ServiceWait  State = "service wait"
	ServiceHold  State = "service hold"
	ServiceFail  State = "service failed"
)

// Event drives the state machine.
type Event string

// Events. Done, Fail, Wait, Resume and Hold are internal to the conductor.
const (
	EvManage   Event = "manage"
	EvProvide  Event = "provide"
	EvInspect  Event = "inspect"
	EvClean    Event = "clean"
	EvDeploy   Event = "deploy"
	EvRebuild  Event = "rebuild"
	EvDelete   Event = "delete"
	EvDone     Event = "done"
	EvFail     Event = "fail"
	EvWait     Event = "wait"
	EvResume   Event = "resume"
	EvHold     Event = "hold"
	EvUnhold   Event = "unhold"
	EvAbort    Event = "abort"
	EvAdopt    Event = "adopt"
	EvRescue   Event = "rescue"
	EvUnrescue Event = "unrescue"
	EvService  Event = "service"
)

// AllEvents lists every event.
var AllEvents = []Event{EvManage, EvProvide, EvInspect, EvClean, EvDeploy, EvRebuild, EvDelete,
	EvDone, EvFail, EvWait, EvResume, EvHold, EvUnhold, EvAbort, EvAdopt, EvRescue, EvUnrescue,
	EvService}

type stateInfo struct {
	stable bool
	target State // default target when entered; empty for stable states
}

var states = map[State]stateInfo{
	Enroll:       {stable: true},
	Manageable:   {stable: true},
	Available:    {stable: true},
	Active:       {stable: true},
	ErrorState:   {stable: true},
	Rescue:       {stable: true},
	Verifying:    {target: Manageable},
	Deploying:    {target: Active},
	DeployWait:   {target: Active},
	DeployHold:   {target: Active},
	DeployFail:   {target: Active},
	Deleting:     {target: Available},
	Cleaning:     {target: Available},
	CleanWait:    {target: Available},
	CleanHold:    {target: Available},
	CleanFail:    {target: Available},
	Inspecting:   {target: Manageable},
	InspectWait:  {target: Manageable},
	InspectFail:  {target: Manageable},
	Adopting:     {target: Active},
	AdoptFail:    {target: Active},
	Rescuing:     {target: Rescue},
	RescueWait:   {target: Rescue},
	RescueFail:   {target: Rescue},
	Unrescuing:   {target: Active},
	UnrescueFail: {target: Active},
	Servicing:    {target: Active},
	ServiceWait:  {target: Active},
	ServiceHold:  {target: Active},
	ServiceFail:  {target: Active},
}

// transitions is Ironic master's table (ironic/common/state_machine.py, 93 transitions).
var transitions = map[State]map[Event]State{
	Enroll:       {EvManage: Verifying},
	Verifying:    {EvDone: Manageable, EvFail: Enroll},
	Manageable:   {EvProvide: Cleaning, EvClean: Cleaning, EvInspect: Inspecting, EvAdopt: Adopting},
	Available:    {EvDeploy: Deploying, EvManage: Manageable},
	Deploying:    {EvWait: DeployWait, EvHold: DeployHold, EvDone: Active, EvFail: DeployFail},
	DeployWait:   {EvResume: Deploying, EvHold: DeployHold, EvFail: DeployFail, EvAbort: DeployFail, EvDelete: Deleting},
	DeployHold:   {EvUnhold: DeployWait, EvAbort: DeployFail},
	DeployFail:   {EvRebuild: Deploying, EvDeploy: Deploying, EvDelete: Deleting},
	Active:       {EvRebuild: Deploying, EvDelete: Deleting, EvRescue: Rescuing, EvService: Servicing},
	Deleting:     {EvClean: Cleaning, EvFail: ErrorState},
	ErrorState:   {EvRebuild: Deploying, EvDelete: Deleting},
	Cleaning:     {EvDone: Available, EvManage: Manageable, EvWait: CleanWait, EvHold: CleanHold, EvFail: CleanFail},
	CleanWait:    {EvResume: Cleaning, EvHold: CleanHold, EvFail: CleanFail, EvAbort: CleanFail},
	CleanHold:    {EvUnhold: CleanWait, EvAbort: CleanFail},
	CleanFail:    {EvManage: Manageable},
	Inspecting:   {EvDone: Manageable, EvWait: InspectWait, EvFail: InspectFail},
	InspectWait:  {EvDone: Manageable, EvResume: Inspecting, EvFail: InspectFail, EvAbort: InspectFail},
	InspectFail:  {EvManage: Manageable, EvInspect: Inspecting},
	Adopting:     {EvDone: Active, EvFail: AdoptFail},
	AdoptFail:    {EvAdopt: Adopting, EvManage: Manageable},
	Rescuing:     {EvDone: Rescue, EvWait: RescueWait, EvFail: RescueFail},
	RescueWait:   {EvResume: Rescuing, EvFail: RescueFail, EvAbort: RescueFail, EvDelete: Deleting},
	Rescue:       {EvRescue: Rescuing, EvUnrescue: Unrescuing, EvDelete: Deleting},
	RescueFail:   {EvRescue: Rescuing, EvUnrescue: Unrescuing, EvDelete: Deleting},
	Unrescuing:   {EvDone: Active, EvFail: UnrescueFail},
	UnrescueFail: {EvRescue: Rescuing, EvUnrescue: Unrescuing, EvDelete: Deleting},
	Servicing:    {EvDone: Active, EvWait: ServiceWait, EvHold: ServiceHold, EvFail: ServiceFail},
	ServiceWait:  {EvResume: Servicing, EvHold: ServiceHold, EvFail: ServiceFail, EvAbort: ServiceFail, EvDelete: Deleting},
	ServiceHold:  {EvService: Servicing, EvUnhold: ServiceWait, EvFail: ServiceFail, EvAbort: ServiceFail},
	ServiceFail:  {EvService: Servicing, EvRescue: Rescuing, EvWait: ServiceWait, EvHold: ServiceHold, EvAbort: Active, EvDelete: Deleting},
}

// AllStates lists every state, stable ones first, in a stable order.
func AllStates() []State {
	out := make([]State, 0, len(states))
	for s := range states {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b State) int {
		if states[a].stable != states[b].stable {
			if states[a].stable {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		} else if a > b {
			return 1
		}
		return 0
	})
	return out
}

// Known reports whether s is a real provision state.
func (s State) Known() bool { _, ok := states[s]; return ok }

// Stable reports whether s is a stable state (one that can be a target).
func (s State) Stable() bool { return states[s].stable }

// DefaultTarget is the stable state that s heads to; empty for stable states.
func (s State) DefaultTarget() State { return states[s].target }

// Failed reports whether s is a failure state (clients stop waiting on these).
func (s State) Failed() bool {
	return s == ErrorState || s == DeployFail || s == CleanFail || s == InspectFail ||
		s == AdoptFail || s == RescueFail || s == UnrescueFail || s == ServiceFail
}

// InvalidTransitionError is returned when event is not allowed in state From.
type InvalidTransitionError struct {
	From  State
	Event Event
}

func (e *InvalidTransitionError) Error() string {
	return fmt.Sprintf("event %q is not allowed in provision state %q", e.Event, e.From)
}

// Next returns the state that event e leads to from s.
func Next(s State, e Event) (State, error) {
	if to, ok := transitions[s][e]; ok {
		return to, nil
	}
	return "", &InvalidTransitionError{From: s, Event: e}
}

// Allowed reports whether event e is allowed in state s.
func Allowed(s State, e Event) bool { _, ok := transitions[s][e]; return ok }

// Transition is the outcome of an event: the new state and target_provision_state.
type Transition struct {
	From, To State
	Event    Event
	Target   State
}

// Apply computes the transition for event e on a node in state s. target overrides the default
// target of the new state when not empty (Ironic: manual cleaning targets manageable; a timed
// out wait keeps its old target). A stable new state has no target.
func Apply(s State, e Event, target State) (Transition, error) {
	to, err := Next(s, e)
	if err != nil {
		return Transition{}, err
	}
	t := Transition{From: s, To: to, Event: e}
	switch {
	case to.Stable():
	case target != "":
		t.Target = target
	default:
		t.Target = to.DefaultTarget()
	}
	return t, nil
}

// StuckAsFail are the states a restarted conductor moves on with event fail
// (Ironic's STUCK_STATES_TREATED_AS_FAIL). *wait states are not in it.
var StuckAsFail = []State{Deploying, Cleaning, Verifying, Inspecting, Adopting, Rescuing,
	Unrescuing, Deleting, Servicing}

// UpdateAllowed are the states in which a node with a target may still be PATCHed.
var UpdateAllowed = []State{DeployFail, Inspecting, InspectFail, InspectWait, CleanFail, ErrorState,
	Verifying, AdoptFail, RescueFail, UnrescueFail, ServiceHold, ServiceFail}

// DeleteAllowed are the states in which a node may be deleted outside maintenance.
var DeleteAllowed = []State{Manageable, Enroll, AdoptFail}

// PowerSyncSkipped are the states the power sync leaves alone.
var PowerSyncSkipped = []State{DeployWait, CleanWait, Enroll, AdoptFail}

// WaitStates are the states a conductor waits in for an external callback, with the timeout
// setting that guards each.
var WaitStates = []State{DeployWait, CleanWait, InspectWait, RescueWait, ServiceWait}
