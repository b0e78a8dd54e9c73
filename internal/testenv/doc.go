// Package testenv starts real servers for integration tests: Mosquitto
// (plain, with TLS and client certificates, with a password file), InfluxDB
// 1.8.10 and a TCP proxy whose link a test can cut. Each instance listens on
// a free loopback port, keeps its files in t.TempDir() and is stopped in
// t.Cleanup. A missing binary fails the test with the command that installs it.
//
// It imports nothing of the project.
package testenv
