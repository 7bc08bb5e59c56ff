package main

import (
	"context"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"
)

// TestGophercloud drives the daemon with gophercloud's baremetal/v1 client, unmodified.
func TestGophercloud(t *testing.T) {
	d := startDaemon(t, "")
	ctx := context.Background()
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: d.URL + "/v1/"})
	if err != nil {
		t.Fatal(err)
	}
	client.Microversion = "1.78"

	n, err := nodes.Create(ctx, client, nodes.CreateOpts{Driver: "fake-hardware", Name: "gc-0",
		BootInterface: "ipxe", DeployInterface: "direct", RAIDInterface: "no-raid",
		Properties: map[string]any{"cpus": 4}}).Extract()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if n.ProvisionState != "enroll" || n.BootInterface != "ipxe" || n.RAIDInterface != "no-raid" {
		t.Fatalf("created: state %q boot %q raid %q", n.ProvisionState, n.BootInterface, n.RAIDInterface)
	}

	wait := func(want string) *nodes.Node {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			got, err := nodes.Get(ctx, client, n.UUID).Extract()
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.ProvisionState == want && got.TargetProvisionState == "" {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("node in %q (last_error %q), want %q", got.ProvisionState, got.LastError, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, step := range []struct {
		target nodes.TargetProvisionState
		want   string
	}{{nodes.TargetManage, "manageable"}, {nodes.TargetProvide, "available"}, {nodes.TargetActive, "active"}} {
		if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: step.target}).ExtractErr(); err != nil {
			t.Fatalf("ChangeProvisionState(%s): %v", step.target, err)
		}
		wait(step.want)
	}

	upd, err := nodes.Update(ctx, client, n.UUID, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/extra/owner", Value: "team-a"},
	}).Extract()
	if err != nil || upd.Extra["owner"] != "team-a" {
		t.Fatalf("Update: %v %v", err, upd)
	}

	if err := nodes.ChangePowerState(ctx, client, n.UUID, nodes.PowerStateOpts{Target: nodes.PowerOff}).ExtractErr(); err != nil {
		t.Fatalf("ChangePowerState: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		got, _ := nodes.Get(ctx, client, n.UUID).Extract()
		if got.PowerState == "power off" && got.TargetPowerState == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("power off never landed: %q", got.PowerState)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := ports.Create(ctx, client, ports.CreateOpts{NodeUUID: n.UUID, Address: "52:54:00:00:00:01"}).Extract(); err != nil {
		t.Fatalf("ports.Create: %v", err)
	}

	pages, err := nodes.ListDetail(client, nodes.ListOpts{ProvisionState: "active"}).AllPages(ctx)
	if err != nil {
		t.Fatalf("ListDetail: %v", err)
	}
	all, err := nodes.ExtractNodes(pages)
	if err != nil || len(all) != 1 || all[0].UUID != n.UUID {
		t.Fatalf("ListDetail(active) = %v, %v", all, err)
	}

	v, err := nodes.Validate(ctx, client, n.UUID).Extract()
	if err != nil || !v.Power.Result || !v.Deploy.Result {
		t.Fatalf("Validate: %v %+v", err, v)
	}

	err = nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetManage}).ExtractErr()
	if !gophercloud.ResponseCodeIs(err, 400) {
		t.Fatalf("manage an active node: %v, want 400", err)
	}
	if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetDeleted}).ExtractErr(); err != nil {
		t.Fatalf("undeploy: %v", err)
	}
	wait("available")
	if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetManage}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	wait("manageable")
	if err := nodes.Delete(ctx, client, n.UUID).ExtractErr(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := nodes.Get(ctx, client, n.UUID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("Get after delete: %v, want 404", err)
	}
}
