// Command tunnelmesh is the TunnelMesh node and CLI.
package main

func main() {}
