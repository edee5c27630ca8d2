package crmplugin_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/crmsync/crmsync/connectors/connector"
	"github.com/crmsync/crmsync/connectors/crmplugin"
	"github.com/crmsync/crmsync/connectors/memcrm"
)

// A connector binary's main is one call to Serve.
func ExampleServe() {
	crmplugin.Serve(memcrm.New(memcrm.WithLogger(crmplugin.Logger())))
}

// crmsync's side: a Host launches a connector plugin process and calls it
// like any connector. Here the plugin binary is this test executable, which
// serves memcrm the way `crmsync connector memcrm` does.
func Example() {
	exe, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	host, err := crmplugin.NewHost(crmplugin.HostConfig{Executable: exe})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()

	ctx := context.Background()
	crm, err := host.Connector(ctx, "memcrm")
	if err != nil {
		log.Fatal(err)
	}
	session := memcrm.Session("acme", memcrm.DefaultToken)
	resp, err := crm.BulkUpdate(ctx, connector.BulkUpdateRequest{Session: session, Operations: []connector.Operation{
		{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Lovelace", "Company": "Analytical Engines"}},
		{Kind: connector.OpCreate, Object: "Lead", Fields: map[string]any{"LastName": "Babbage"}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range resp.Results {
		if r.Error != nil {
			fmt.Println("failed:", r.Error.Code, r.Error.Fields)
			continue
		}
		fmt.Printf("created a Lead: key prefix %s, %d characters\n", r.ID[:3], len(r.ID))
	}
	fmt.Println("API calls:", resp.Calls)

	_, err = crm.Check(ctx, connector.CheckRequest{Session: memcrm.Session("acme", "revoked")})
	fmt.Println("bad credentials:", errors.Is(err, connector.ErrCredentials))
	// Output:
	// created a Lead: key prefix 00Q, 18 characters
	// failed: REQUIRED_FIELD_MISSING [Company]
	// API calls: 1
	// bad credentials: true
}
