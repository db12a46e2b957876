module example.com/glow/booking-sync

go 1.21

require (
	golang.org/x/crypto v0.17.0
	golang.org/x/net v0.15.0
	golang.org/x/text v0.13.0
)
