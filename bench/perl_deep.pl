# Bench fixture: a stack DEPTH subs deep that spins at the bottom, counting its spins where a
# reader outside can see them.
# Usage: perl perl_deep.pl READY_FD DEPTH
# As fixtures/perl/deep.pl: alpha beta gamma delta alpha ... call each other, each from its
# own line; the DEPTHth writes "ready 0xADDR" to READY_FD, ADDR being the address of the
# counter's SV (a plain integer: its value is in the SV head, sv_u), then increments it
# forever, so that the bench can tell the loop runs again after each stop.
use strict;
use warnings;
no warnings 'recursion';

my ($fd, $depth) = @ARGV;
defined $fd && $fd =~ /^[0-9]+$/ && defined $depth && $depth =~ /^[1-9][0-9]*$/
    or die "usage: perl perl_deep.pl READY_FD DEPTH\n";

my $spins = 0;

sub ready {
    open(my $r, '>>', "/dev/fd/$fd") or die "ready fd $fd: $!";
    syswrite($r, sprintf("ready 0x%x\n", 0 + \$spins));
    close($r);
}

# $n: frames still to make, this one included; the last one spins
sub alpha {
    my ($n) = @_;
    if ($n == 1) { ready(); ++$spins while 1 }  # spin here
    beta($n - 1);
    return 1;
}
sub beta {
    my ($n) = @_;
    if ($n == 1) { ready(); ++$spins while 1 }  # spin here
    gamma($n - 1);
    return 2;
}
sub gamma {
    my ($n) = @_;
    if ($n == 1) { ready(); ++$spins while 1 }  # spin here
    delta($n - 1);
    return 3;
}
sub delta {
    my ($n) = @_;
    if ($n == 1) { ready(); ++$spins while 1 }  # spin here
    alpha($n - 1);
    return 4;
}

alpha($depth);
