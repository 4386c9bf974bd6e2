import dagster as dg

# One dynamic partition per discovered domain; the `domains` asset registers them.
domain_partitions = dg.DynamicPartitionsDefinition(name="domain")
