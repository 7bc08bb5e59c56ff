package node

import (
	"errors"
	"fmt"
	"testing"
)

// want is Ironic master's transition table written out independently of the implementation,
// as "from|event" → to. Every (state, event) pair not in it must be refused.
var want = map[string]State{
	"enroll|manage":            Verifying,
	"verifying|done":           Manageable,
	"verifying|fail":           Enroll,
	"manageable|provide":       Cleaning,
	"manageable|clean":         Cleaning,
	"manageable|inspect":       Inspecting,
	"manageable|adopt":         Adopting,
	"available|deploy":         Deploying,
	"available|manage":         Manageable,
	"deploying|wait":           DeployWait,
	"deploying|hold":           DeployHold,
	"deploying|done":           Active,
	"deploying|fail":           DeployFail,
	"wait call-back|resume":    Deploying,
	"wait call-back|hold":      DeployHold,
	"wait call-back|fail":      DeployFail,
	"wait call-back|abort":     DeployFail,
	"wait call-back|delete":    Deleting,
	"deploy hold|unhold":       DeployWait,
	"deploy hold|abort":        DeployFail,
	"deploy failed|rebuild":    Deploying,
	"deploy failed|deploy":     Deploying,
	"deploy failed|delete":     Deleting,
	"active|rebuild":           Deploying,
	"active|delete":            Deleting,
	"active|rescue":            Rescuing,
	"active|service":           Servicing,
	"deleting|clean":           Cleaning,
	"deleting|fail":            ErrorState,
	"error|rebuild":            Deploying,
	"error|delete":             Deleting,
	"cleaning|done":            Available,
	"cleaning|manage":          Manageable,
	"cleaning|wait":            CleanWait,
	"cleaning|hold":            CleanHold,
	"cleaning|fail":            CleanFail,
	"clean wait|resume":        Cleaning,
	"clean wait|hold":          CleanHold,
	"clean wait|fail":          CleanFail,
	"clean wait|abort":         CleanFail,
	"clean hold|unhold":        CleanWait,
	"clean hold|abort":         CleanFail,
	"clean failed|manage":      Manageable,
	"inspecting|done":          Manageable,
	"inspecting|wait":          InspectWait,
	"inspecting|fail":          InspectFail,
	"inspect wait|done":        Manageable,
	"inspect wait|resume":      Inspecting,
	"inspect wait|fail":        InspectFail,
	"inspect wait|abort":       InspectFail,
	"inspect failed|manage":    Manageable,
	"inspect failed|inspect":   Inspecting,
	"adopting|done":            Active,
	"adopting|fail":            AdoptFail,
	"adopt failed|adopt":       Adopting,
	"adopt failed|manage":      Manageable,
	"rescuing|done":            Rescue,
	"rescuing|wait":            RescueWait,
	"rescuing|fail":            RescueFail,
	"rescue wait|resume":       Rescuing,
	"rescue wait|fail":         RescueFail,
	"rescue wait|abort":        RescueFail,
	"rescue wait|delete":       Deleting,
	"rescue|rescue":            Rescuing,
	"rescue|unrescue":          Unrescuing,
	"rescue|delete":            Deleting,
	"rescue failed|rescue":     Rescuing,
	"rescue failed|unrescue":   Unrescuing,
	"rescue failed|delete":     Deleting,
	"unrescuing|done":          Active,
	"unrescuing|fail":          UnrescueFail,
	"unrescue failed|rescue":   Rescuing,
	"unrescue failed|unrescue": Unrescuing,
	"unrescue failed|delete":   Deleting,
	"servicing|done":           Active,
	"servicing|wait":           ServiceWait,
	"servicing|hold":           ServiceHold,
	"servicing|fail":           ServiceFail,
	"service wait|resume":      Servicing,
	"service wait|hold":        ServiceHold,
	"service wait|fail":        ServiceFail,
	"service wait|abort":       ServiceFail,
	"service wait|delete":      Deleting,
	"service hold|service":     Servicing,
	"service hold|unhold":      ServiceWait,
	"service hold|fail":        ServiceFail,
	"service hold|abort":       ServiceFail,
	"service failed|service":   Servicing,
	"service failed|rescue":    Rescuing,
	"service failed|wait":      ServiceWait,
	"service failed|hold":      ServiceHold,
	"service failed|abort":     Active,
	"service failed|delete":    Deleting,
}

func TestTransitionsEveryPair(t *testing.T) {
	if len(want) != 93 {
		t.Fatalf("reference table has %d transitions, want Ironic's 93", len(want))
	}
	all := AllStates()
	if len(all) != 30 {
		t.Fatalf("AllStates() has %d states, want 30", len(all))
	}
	seen := 0
	for _, s := range all {
		for _, e := range AllEvents {
			name := fmt.Sprintf("%s|%s", s, e)
			t.Run(name, func(t *testing.T) {
				got, err := Next(s, e)
				to, ok := want[name]
				if !ok {
					var inv *InvalidTransitionError
					if !errors.As(err, &inv) || inv.From != s || inv.Event != e {
						t.Fatalf("Next(%q, %q) = %q, %v; want *InvalidTransitionError", s, e, got, err)
					}
					if Allowed(s, e) {
						t.Fatalf("Allowed(%q, %q) = true, want false", s, e)
					}
					return
				}
				seen++
				if err != nil || got != to {
					t.Fatalf("Next(%q, %q) = %q, %v; want %q", s, e, got, err, to)
				}
				tr, err := Apply(s, e, "")
				if err != nil {
					t.Fatalf("Apply(%q, %q): %v", s, e, err)
				}
				if to.Stable() && tr.Target != "" {
					t.Errorf("Apply(%q, %q).Target = %q, want none for stable %q", s, e, tr.Target, to)
				}
				if !to.Stable() && tr.Target != to.DefaultTarget() {
					t.Errorf("Apply(%q, %q).Target = %q, want %q", s, e, tr.Target, to.DefaultTarget())
				}
			})
		}
	}
	if seen != len(want) {
		t.Errorf("matched %d allowed transitions, want %d (a state in the table is missing from AllStates)", seen, len(want))
	}
}

func TestApplyTargetOverride(t *testing.T) {
	tests := []struct {
		name   string
		from   State
		ev     Event
		target State
		want   Transition
	}{
		{"manual-clean/targets-manageable", Manageable, EvClean, Manageable,
			Transition{From: Manageable, To: Cleaning, Event: EvClean, Target: Manageable}},
		{"provide/targets-available", Manageable, EvProvide, "",
			Transition{From: Manageable, To: Cleaning, Event: EvProvide, Target: Available}},
		{"stable/ignores-override", Cleaning, EvManage, Available,
			Transition{From: Cleaning, To: Manageable, Event: EvManage}},
		{"fail/keeps-target", Deploying, EvFail, "",
			Transition{From: Deploying, To: DeployFail, Event: EvFail, Target: Active}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(tc.from, tc.ev, tc.target)
			if err != nil || got != tc.want {
				t.Fatalf("Apply(%q, %q, %q) = %+v, %v; want %+v", tc.from, tc.ev, tc.target, got, err, tc.want)
			}
		})
	}
}

func TestStuckStatesFailToIronicResult(t *testing.T) {
	want := map[State]State{Deploying: DeployFail, Cleaning: CleanFail, Inspecting: InspectFail,
		Verifying: Enroll, Deleting: ErrorState, Adopting: AdoptFail, Rescuing: RescueFail,
		Unrescuing: UnrescueFail, Servicing: ServiceFail}
	for _, s := range StuckAsFail {
		got, err := Next(s, EvFail)
		if err != nil || got != want[s] {
			t.Errorf("Next(%q, fail) = %q, %v; want %q", s, got, err, want[s])
		}
	}
	for _, s := range WaitStates {
		if _, err := Next(s, EvFail); err != nil {
			t.Errorf("wait state %q cannot fail on timeout: %v", s, err)
		}
	}
}
