package api

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/utils"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// TestGophercloud drives the API with gophercloud's baremetal/v1 client, unmodified: the
// status codes it accepts, the bodies it decodes, and its version discovery.
func TestGophercloud(t *testing.T) {
	h, _ := newTestAPI(t)
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := context.Background()
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: srv.URL + "/v1/"})
	if err != nil {
		t.Fatal(err)
	}

	mv, err := utils.GetSupportedMicroversions(ctx, client)
	if err != nil {
		t.Fatalf("GetSupportedMicroversions: %v", err)
	}
	if mv.MinMajor != 1 || mv.MinMinor != 1 || mv.MaxMajor != 1 || mv.MaxMinor != maxMinor {
		t.Errorf("microversions = %+v", mv)
	}
	client.Microversion = "1.78"

	n, err := nodes.Create(ctx, client, nodes.CreateOpts{Driver: "fake-hardware", Name: "g0",
		DriverInfo: map[string]any{"ipmi_password": "p"}, Properties: map[string]any{"cpus": 4}}).Extract()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if n.ProvisionState != "enroll" || n.DriverInfo["ipmi_password"] != "******" || n.Properties["cpus"] != float64(4) {
		t.Errorf("created node = %+v", n)
	}
	if _, err := nodes.Create(ctx, client, nodes.CreateOpts{Driver: "fake-hardware", Name: "g0"}).Extract(); !gophercloud.ResponseCodeIs(err, 409) {
		t.Errorf("duplicate Create: %v, want 409", err)
	}

	got, err := nodes.Get(ctx, client, "g0").Extract()
	if err != nil || got.UUID != n.UUID {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := nodes.Get(ctx, client, "nope").Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("Get unknown: %v, want 404", err)
	}

	var listed []nodes.Node
	err = nodes.ListDetail(client, nodes.ListOpts{Limit: 10}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		ns, err := nodes.ExtractNodes(p)
		listed = append(listed, ns...)
		return true, err
	})
	if err != nil || len(listed) != 1 || listed[0].Name != "g0" {
		t.Errorf("ListDetail = %+v, %v", listed, err)
	}

	up, err := nodes.Update(ctx, client, n.UUID, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/extra/rack", Value: "r1"},
		nodes.UpdateOperation{Op: nodes.ReplaceOp, Path: "/maintenance", Value: "true"},
	}).Extract()
	if err != nil || up.Extra["rack"] != "r1" || !up.Maintenance {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	if err := nodes.UnsetMaintenance(ctx, client, n.UUID).ExtractErr(); err != nil {
		t.Errorf("UnsetMaintenance: %v", err)
	}
	if err := nodes.SetMaintenance(ctx, client, n.UUID, nodes.MaintenanceOpts{Reason: "x"}).ExtractErr(); err != nil {
		t.Errorf("SetMaintenance: %v", err)
	}
	if err := nodes.UnsetMaintenance(ctx, client, n.UUID).ExtractErr(); err != nil {
		t.Errorf("UnsetMaintenance: %v", err)
	}

	for _, target := range []nodes.TargetProvisionState{nodes.TargetManage, nodes.TargetProvide} {
		if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: target}).ExtractErr(); err != nil {
			t.Fatalf("ChangeProvisionState %s: %v", target, err)
		}
	}
	err = nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetActive,
		ConfigDrive: nodes.ConfigDrive{MetaData: map[string]any{"hostname": "g0"}, UserData: "#cloud-config"}}).ExtractErr()
	if err != nil {
		t.Fatalf("deploy with config drive: %v", err)
	}
	if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetManage}).ExtractErr(); !gophercloud.ResponseCodeIs(err, 400) {
		t.Errorf("manage an active node: %v, want 400", err)
	}
	if err := nodes.ChangePowerState(ctx, client, n.UUID, nodes.PowerStateOpts{Target: nodes.PowerOff, Timeout: 30}).ExtractErr(); err != nil {
		t.Errorf("ChangePowerState: %v", err)
	}
	if err := nodes.SetRAIDConfig(ctx, client, n.UUID, nodes.RAIDConfigOpts{LogicalDisks: []nodes.LogicalDisk{
		{SizeGB: ptr(100), RAIDLevel: nodes.RAID1, IsRootVolume: ptr(true), Controller: "software"},
	}}).ExtractErr(); err != nil {
		t.Errorf("SetRAIDConfig: %v", err)
	}
	v, err := nodes.Validate(ctx, client, n.UUID).Extract()
	if err != nil || !v.Power.Result {
		t.Errorf("Validate = %+v, %v", v, err)
	}
	if _, err := nodes.GetInventory(ctx, client, n.UUID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Errorf("GetInventory without inventory: %v, want 404", err)
	}
	if err := nodes.AttachVirtualInterface(ctx, client, n.UUID, nodes.VirtualInterfaceOpts{ID: "vif-1"}).ExtractErr(); err != nil {
		t.Errorf("AttachVirtualInterface: %v", err)
	}
	if _, err := nodes.ListVirtualInterfaces(ctx, client, n.UUID).Extract(); err != nil {
		t.Errorf("ListVirtualInterfaces: %v", err)
	}

	p, err := ports.Create(ctx, client, ports.CreateOpts{NodeUUID: n.UUID, Address: "52:54:00:AA:BB:CC"}).Extract()
	if err != nil || p.Address != "52:54:00:aa:bb:cc" {
		t.Fatalf("ports.Create = %+v, %v", p, err)
	}
	pages, err := ports.List(client, ports.ListOpts{Node: "g0"}).AllPages(ctx)
	if err != nil {
		t.Fatalf("ports.List: %v", err)
	}
	if ps, err := ports.ExtractPorts(pages); err != nil || len(ps) != 1 {
		t.Errorf("ports = %+v, %v", ps, err)
	}

	if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetDeleted}).ExtractErr(); err != nil {
		t.Fatalf("undeploy: %v", err)
	}
	if err := nodes.ChangeProvisionState(ctx, client, n.UUID, nodes.ProvisionStateOpts{Target: nodes.TargetManage}).ExtractErr(); err != nil {
		t.Fatalf("manage: %v", err)
	}
	if err := nodes.Delete(ctx, client, n.UUID).ExtractErr(); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
