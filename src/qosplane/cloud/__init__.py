"""Reading real OpenStack clouds: the readers at the edge (openstacksdk) and the pure turn of their answers into intent."""
