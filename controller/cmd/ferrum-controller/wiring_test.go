package main

import (
	"github.com/ferrumhq/ferrum/controller/api"
	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/power/ipmi"
)

// The conductor provides everything the API can use, including its optional abilities.
var (
	_ api.Backend                   = (*conductor.Conductor)(nil)
	_ api.AllocationUpdater         = (*conductor.Conductor)(nil)
	_ api.DriverPropertiesProvider  = (*conductor.Conductor)(nil)
	_ api.BootDeviceManager         = (*conductor.Conductor)(nil)
	_ conductor.PropertiesDescriber = (*fake.Hardware)(nil)
	_ conductor.PropertiesDescriber = (*ipmi.Hardware)(nil)
)
