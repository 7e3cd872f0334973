module tidings/bench/goload

go 1.19
