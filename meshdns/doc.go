// Package meshdns is a CoreDNS plugin answering mesh names.
package meshdns
