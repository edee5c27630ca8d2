// Command jsoncrm is an example crmsync connector: a CRM that keeps its
// records in one JSON file, with one object for people (Person) and one for
// their organizations (Organization), and no campaigns or tasks. It is the
// connector docs/connectors.md walks through, written only against the
// public SDK (connectors/connector, connectors/crmplugin), and a template
// to copy for a real CRM.
//
// Build it and give it to crmsync:
//
//	go build -o /opt/crm/jsoncrm ./examples/jsoncrm
//	crmsync serve --connector-plugin jsoncrm=/opt/crm/jsoncrm@$(sha256sum /opt/crm/jsoncrm | cut -d' ' -f1)
//
// A connection names the store and its key: config {"path": "/var/lib/jsoncrm/crm.json"},
// credentials {"apiKey": "…"}; the store is created with that key by
// `jsoncrm init PATH APIKEY`.
package main

import (
	"fmt"
	"os"

	"github.com/crmsync/crmsync/connectors/crmplugin"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "init" {
		if err := Init(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "jsoncrm:", err)
			os.Exit(1)
		}
		return
	}
	crmplugin.Serve(New(crmplugin.Logger()))
}
