set terminal png size 900,560 noenhanced
set output '2026-11-25-s3-flows.png'
set title '64-byte frames on veth, Mpps vs flow rules'
set logscale x 10
set xtics ('1' 1, '1k' 1000, '100k' 100000, '1M' 1000000)
set offsets graph 0.05, graph 0.05, 0, 0
set xlabel "flow rules (the generator offers min(rules, 60000) flows)"
set ylabel "Mpps delivered to the sink"
set yrange [0:*]
set grid
set key outside right
plot '2026-11-25-s3-flows.dat' index 0 using 1:2 with linespoints title 'vswift', \
     '2026-11-25-s3-flows.dat' index 1 using 1:2 with linespoints title 'xsk_fwd', \
     '2026-11-25-s3-flows.dat' index 2 using 1:2 with linespoints title 'ovs-afxdp'
