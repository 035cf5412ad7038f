-- How the TPC-H tables are spread over the workers: lineitem and orders co-located on the
-- order key, part and partsupp on the part key, nation and region replicated.
SELECT create_reference_table('nation');
SELECT create_reference_table('region');
SELECT create_distributed_table('orders', 'o_orderkey');
SELECT create_distributed_table('lineitem', 'l_orderkey', colocate_with => 'orders');
SELECT create_distributed_table('customer', 'c_custkey', colocate_with => 'none');
SELECT create_distributed_table('part', 'p_partkey', colocate_with => 'none');
SELECT create_distributed_table('partsupp', 'ps_partkey', colocate_with => 'part');
SELECT create_distributed_table('supplier', 's_suppkey', colocate_with => 'none');
