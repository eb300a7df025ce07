"""Emergency resources (应急资源, issue 13): the resource database (warehouses and their stock, teams,
experts, equipment, shelters), requests and shipments over a stock ledger, requisition (征用)."""
