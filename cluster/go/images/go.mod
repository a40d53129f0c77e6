module netmesh.io/cluster/images

go 1.24
