module netmesh.io/bench/loadgen

go 1.24
