package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// dynsecPlugin is where Debian's mosquitto package puts the plugin.
const dynsecPlugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

// DynSec is a Mosquitto dynamic-security policy for anonymous clients:
// they may publish, and subscribe only when allowed. Mosquitto's plain
// acl_file never refuses a subscription (it withholds the messages);
// this plugin answers SUBACK 0x80. Pass Extra() in MosquittoOptions.Extra.
type DynSec struct {
	t    testing.TB
	path string
}

// NewDynSec writes the policy, subscriptions allowed or refused.
func NewDynSec(t testing.TB, subscribe bool) *DynSec {
	t.Helper()
	if _, err := os.Stat(dynsecPlugin); err != nil {
		t.Fatalf("%s: %v (Debian's mosquitto package ships it; scripts/install-deps.sh installs mosquitto)", dynsecPlugin, err)
	}
	d := &DynSec{t: t, path: filepath.Join(t.TempDir(), "dynsec.json")}
	d.Allow(subscribe)
	return d
}

// Extra is the mosquitto.conf lines that load the plugin with the policy.
func (d *DynSec) Extra() string {
	return "plugin " + dynsecPlugin + "\nplugin_opt_config_file " + d.path + "\n"
}

// Allow rewrites the policy; the broker reads it when it (re)starts.
func (d *DynSec) Allow(subscribe bool) {
	d.t.Helper()
	policy := fmt.Appendf(nil, `{"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
 "subscribe": %t, "unsubscribe": true},
 "clients": [], "groups": [{"groupname": "anon", "roles": []}], "roles": [], "anonymousGroup": "anon"}`, subscribe)
	if err := os.WriteFile(d.path, policy, 0o600); err != nil {
		d.t.Fatal(err)
	}
}
