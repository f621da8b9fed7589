#!/usr/bin/perl
# Benchmark target: a Perl heap of N hash entries, each an array of one number, then blocked.
# Usage: perl heap_big.pl READY_FD N
use strict;
use warnings;
my ($fd, $n) = @ARGV;
my %big;
$big{$_} = [$_] for 1 .. $n;
open(my $out, '>&=', $fd) or die "fd $fd: $!";
print $out scalar(keys %big), "\nready\n";
close $out;
my $line = <STDIN>;
1 while !defined $line;
