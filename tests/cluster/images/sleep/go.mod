module kip.local/sleep

go 1.26
