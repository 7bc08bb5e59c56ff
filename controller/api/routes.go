package api

// routes registers every v1 endpoint. Paths are after v1Path's normalization ("/nodes" is
// already "/v1/nodes", trailing slashes are gone).
func (s *server) routes() {
	r := s.route
	r("GET /v1/{$}", s.getV1)
	r("/v1/{$}", s.v1NotGet)

	r("GET /v1/nodes", s.listNodes(false))
	r("POST /v1/nodes", s.createNode)
	r("GET /v1/nodes/detail", s.listNodes(true))
	r("GET /v1/nodes/validate", s.validateNodeQuery)
	r("GET /v1/nodes/{node}", s.getNode)
	r("PATCH /v1/nodes/{node}", s.patchNode)
	r("DELETE /v1/nodes/{node}", s.deleteNode)
	r("GET /v1/nodes/{node}/states", s.getStates)
	r("PUT /v1/nodes/{node}/states/power", s.setPower)
	r("PUT /v1/nodes/{node}/states/provision", s.setProvision)
	r("PUT /v1/nodes/{node}/states/raid", s.setRAID)
	r("PUT /v1/nodes/{node}/maintenance", s.setMaintenance)
	r("DELETE /v1/nodes/{node}/maintenance", s.clearMaintenance)
	r("GET /v1/nodes/{node}/validate", s.validateNode)
	r("PUT /v1/nodes/{node}/management/boot_device", s.setBootDevice)
	r("GET /v1/nodes/{node}/management/boot_device", s.getBootDevice)
	r("GET /v1/nodes/{node}/management/boot_device/supported", s.supportedBootDevices)
	r("GET /v1/nodes/{node}/inventory", s.getInventory)
	r("GET /v1/nodes/{node}/bios", s.getBIOS)
	r("GET /v1/nodes/{node}/bios/{setting}", s.getBIOSSetting)
	r("GET /v1/nodes/{node}/ports", s.listPorts(false, "node"))
	r("GET /v1/nodes/{node}/ports/detail", s.listPorts(true, "node"))
	r("GET /v1/nodes/{node}/portgroups", s.listPortgroups(false, true))
	r("GET /v1/nodes/{node}/portgroups/detail", s.listPortgroups(true, true))
	r("GET /v1/nodes/{node}/traits", s.getTraits)
	r("PUT /v1/nodes/{node}/traits", s.setTraits)
	r("DELETE /v1/nodes/{node}/traits", s.deleteTraits)
	r("PUT /v1/nodes/{node}/traits/{trait}", s.addTrait)
	r("DELETE /v1/nodes/{node}/traits/{trait}", s.deleteTraits)
	r("GET /v1/nodes/{node}/vifs", s.listVIFs)
	r("POST /v1/nodes/{node}/vifs", s.attachVIF)
	r("DELETE /v1/nodes/{node}/vifs/{vif}", s.detachVIF)
	r("GET /v1/nodes/{node}/allocation", s.getNodeAllocation)
	r("DELETE /v1/nodes/{node}/allocation", s.deleteNodeAllocation)

	r("GET /v1/ports", s.listPorts(false, ""))
	r("POST /v1/ports", s.createPort)
	r("GET /v1/ports/detail", s.listPorts(true, ""))
	r("GET /v1/ports/{port}", s.getPort)
	r("PATCH /v1/ports/{port}", s.patchPort)
	r("DELETE /v1/ports/{port}", s.deletePort)

	r("GET /v1/portgroups", s.listPortgroups(false, false))
	r("POST /v1/portgroups", s.createPortgroup)
	r("GET /v1/portgroups/detail", s.listPortgroups(true, false))
	r("GET /v1/portgroups/{portgroup}", s.getPortgroup)
	r("PATCH /v1/portgroups/{portgroup}", s.patchPortgroup)
	r("DELETE /v1/portgroups/{portgroup}", s.deletePortgroup)
	r("GET /v1/portgroups/{portgroup}/ports", s.portgroupPorts(false))
	r("GET /v1/portgroups/{portgroup}/ports/detail", s.portgroupPorts(true))

	r("GET /v1/allocations", s.listAllocations)
	r("POST /v1/allocations", s.createAllocation)
	r("GET /v1/allocations/{allocation}", s.getAllocation)
	r("PATCH /v1/allocations/{allocation}", s.patchAllocation)
	r("DELETE /v1/allocations/{allocation}", s.deleteAllocation)

	r("GET /v1/power_events", s.listPowerEvents)

	r("GET /v1/drivers", s.listDrivers)
	r("GET /v1/drivers/{driver}", s.getDriver)
	r("GET /v1/drivers/{driver}/properties", s.getDriverProperties)

	r("GET /v1/conductors", s.listConductors)
	r("GET /v1/conductors/{hostname}", s.getConductor)

	r("GET /v1/shards", s.listShards)

	r("GET /v1/chassis", s.listChassis)
	r("GET /v1/chassis/detail", s.listChassis)
	r("GET /v1/chassis/{chassis}", s.getChassis)
}

// portgroupPorts serves GET /v1/portgroups/{portgroup}/ports[/detail] (1.24).
func (s *server) portgroupPorts(detail bool) handlerFunc {
	list := s.listPorts(detail, "portgroup")
	return func(c *call) error {
		if _, err := c.portgroupIdent(); err != nil {
			return err
		}
		if c.ver < v24PortgroupSubcontrol {
			return webobError(404, "")
		}
		return list(c)
	}
}
