"""Files for head office: the operations workbook, the owner export and the template check.

Public face: ``operations_workbook.operations_xlsx``, ``owner_export``, ``template_check``.
"""
