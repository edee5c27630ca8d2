package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/memcrm"
	"github.com/crmsync/crmsync/connectors/plugin"
	"github.com/crmsync/crmsync/connectors/salesforce"
)

// builtinConnectors are the connectors `crmsync connector NAME` serves and
// the plugin host launches from crmsync's own executable. Making a
// connector built in is one line here.
var builtinConnectors = map[string]func() connector.Connector{
	memcrm.Name:     func() connector.Connector { return memcrm.New(memcrm.WithLogger(plugin.Logger())) },
	salesforce.Name: func() connector.Connector { return salesforce.New(salesforce.WithLogger(plugin.Logger())) },
}

// connectorCmd serves a built-in connector as a plugin process. crmsync's
// plugin host starts it; run by hand it only explains that it is a plugin.
type connectorCmd struct {
	Name string `arg:"" help:"Built-in connector to serve."`
}

func (c connectorCmd) Run(*env) error {
	newConnector, ok := builtinConnectors[c.Name]
	if !ok {
		// The host parses stderr JSON lines: this one reaches its log as an error.
		plugin.Logger().Error("no such built-in connector", "name", c.Name)
		return fmt.Errorf("no built-in connector %q (built in: %s)", c.Name, strings.Join(slices.Sorted(maps.Keys(builtinConnectors)), ", "))
	}
	plugin.Serve(newConnector())
	return nil
}
