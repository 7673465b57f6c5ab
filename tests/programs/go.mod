module lab/tests/programs

go 1.19
