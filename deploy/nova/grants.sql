-- A MariaDB/MySQL user for the metadata service in Nova mode: SELECT, nothing else.
CREATE USER 'nova_metadata_ro'@'%' IDENTIFIED BY 'CHANGE-ME';
GRANT SELECT ON nova_api.instance_mappings TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_api.cell_mappings TO 'nova_metadata_ro'@'%';
-- For each cell database (nova_cell0, nova_cell1, ...):
GRANT SELECT ON nova_cell1.instances TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.instance_metadata TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.instance_system_metadata TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.instance_extra TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.instance_info_caches TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.block_device_mapping TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.instance_id_mappings TO 'nova_metadata_ro'@'%';
GRANT SELECT ON nova_cell1.s3_images TO 'nova_metadata_ro'@'%';
