# pl_churn.pl - builds and drops many hashes, arrays and strings (deterministic);
# Debian's perl allocates through the system malloc (usemymalloc=n).
# usage: perl pl_churn.pl [RECORDS] [ROUNDS]
use strict;
use warnings;

my $n = shift // 30000;
my $rounds = shift // 4;

sub one_round {
    my ($n, $seed) = @_;
    my @recs;
    for my $i (0 .. $n - 1) {
        my $k = $i + $seed;
        push @recs, { id => $k, name => "item-$k", tags => [ $k % 7, $k % 11, "x" x ($k % 23) ],
                      pos => [ $k * 0.5, $k * 1.5 ] };
    }
    my %by_tag;
    push @{ $by_tag{ $_->{tags}[0] } }, $_ for @recs;
    my @joined = map { join(",", @{ $_->{tags} }) . $_->{name} } @recs;
    my $total = 0;
    $total += length for @joined;
    my %counts;
    my $last = $#joined < 4999 ? $#joined : 4999;
    $counts{$_}++ for split /,/, join(" ", @joined[0 .. $last]);
    my @sorted = sort { $counts{$b} <=> $counts{$a} || $a cmp $b } keys %counts;
    return $total + scalar(@sorted);
}

my $acc = 0;
$acc += one_round($n, $_ * 1000) for 0 .. $rounds - 1;
print "pl_churn $n $rounds $acc\n";
