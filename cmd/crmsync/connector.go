package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

// builtinConnectors are the connectors `crmsync connector NAME` serves and
// the plugin host launches from crmsync's own executable. Making a
// connector built in is one line here. Each gets the operator's
// --allow-crm-host settings.
var builtinConnectors = map[string]func(allowedHosts []string) connector.Connector{
	memcrm.Name: func([]string) connector.Connector { return memcrm.New(memcrm.WithLogger(crmplugin.Logger())) },
	salesforce.Name: func(allowed []string) connector.Connector {
		return salesforce.New(salesforce.WithLogger(crmplugin.Logger()), salesforce.WithAllowedHosts(allowed...))
	},
}

// connectorCmd serves a built-in connector as a plugin process. crmsync's
// plugin host starts it; run by hand it only explains that it is a plugin.
type connectorCmd struct {
	Name         string   `arg:"" help:"Built-in connector to serve."`
	AllowCRMHost []string `name:"allow-crm-host" help:"Hosts the connector may reach besides the CRM's own (passed by crmsync serve from its --allow-crm-host)."`
}

func (c connectorCmd) Run(*env) error {
	newConnector, ok := builtinConnectors[c.Name]
	if !ok {
		// The host parses stderr JSON lines: this one reaches its log as an error.
		crmplugin.Logger().Error("no such built-in connector", "name", c.Name)
		return fmt.Errorf("no built-in connector %q (built in: %s)", c.Name, strings.Join(slices.Sorted(maps.Keys(builtinConnectors)), ", "))
	}
	crmplugin.Serve(newConnector(c.AllowCRMHost))
	return nil
}
