"""What `file_store` refuses, each with a message a client can be shown."""


class FileStoreError(Exception):
    """The file was not stored; nothing of it is left behind."""


class FileTooLarge(FileStoreError):
    def __init__(self, max_bytes: int):
        super().__init__(f"The file is larger than the limit of {max_bytes} bytes.")
        self.max_bytes = max_bytes


class StorageFull(FileStoreError):
    def __init__(self, where: str):
        super().__init__(f"The file store is full ({where}); the file was not stored.")
        self.where = where
