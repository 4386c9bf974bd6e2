"""The invented services of the starter corpus (source of the data files; see ``_build.py``).

Each service is a small database world: entity collections keyed by ``<entity>_id`` fields that every
tool of the service names the same way, read tools (GET) that return records with those ids, and write
tools that take the ids of existing records plus a few simply typed fields. A few concepts recur across
services on purpose (``customer_id``, ``payment_method_id``, ``order_id``) so that the tool graph has
bridges for community detection to cut.
"""

from __future__ import annotations

from ._build import (
    ARR, BOOL, DATE, DATETIME, EMAIL, ENUM, ID, INT, LIST, MONEY, NUM, OBJ, REF, STR, Service,
)

SERVICES: list[Service] = []


def _add(svc: Service) -> Service:
    SERVICES.append(svc)
    return svc


LIMIT = INT("Maximum number of records to return.", minimum=1, maximum=100, default=20)


def _address(s: Service, who: str) -> None:
    s.field(
        line1=STR(f"Street address of the {who}, first line."),
        line2=STR("Apartment, suite or unit, when there is one."),
        city=STR("City or town."),
        state=STR("State, province or region code."),
        postal_code=STR("Postal or ZIP code."),
        country=STR("ISO 3166-1 alpha-2 country code.", minLength=2, maxLength=2),
    )
    s.entity("Address", f"A postal address of the {who}.", ["line1", "line2", "city", "state", "postal_code", "country"],
             required=["line1", "city", "postal_code", "country"])


# ============================================================================ retail orders
s = _add(Service(
    "retail_orders", "openapi-yaml", title="Larkspur Outfitters Store API", provider="larkspur-outfitters.example",
    categories=["ecommerce"], version="2.3.0", server="https://api.larkspur-outfitters.example/v2",
    description="Customers, catalogue, orders, payment methods and returns of the Larkspur Outfitters online store.",
))
_address(s, "customer")
s.field(
    customer_id=ID("customer"),
    order_id=ID("order"),
    product_id=ID("product"),
    payment_method_id=ID("stored payment method"),
    return_id=ID("return request"),
    first_name=STR("Given name of the customer."),
    last_name=STR("Family name of the customer."),
    email=EMAIL("Email address of the customer account."),
    phone=STR("Contact phone number in E.164 format."),
    loyalty_tier=ENUM("Loyalty programme tier of the customer.", ["none", "silver", "gold", "platinum"]),
    default_address=REF("Address"),
    address=REF("Address"),
    shipping_address=REF("Address"),
    name=STR("Display name of the product."),
    category=ENUM("Catalogue category of the product.", ["outerwear", "footwear", "camping", "climbing", "accessories"]),
    price=MONEY("Unit price of the product in USD."),
    stock_quantity=INT("Units of the product currently in stock.", minimum=0),
    color=STR("Colour variant of the product."),
    size=STR("Size variant of the product, e.g. M or 42."),
    quantity=INT("Number of units of the product.", minimum=1),
    unit_price=MONEY("Price charged per unit in USD."),
    items=ARR(REF("OrderItem"), "Line items of the order.", minItems=1),
    status=ENUM("Fulfilment status of the order.", ["pending", "processed", "shipped", "delivered", "cancelled", "returned"]),
    total_amount=MONEY("Total charged for the order in USD, shipping included."),
    placed_on=DATE("Date the order was placed."),
    tracking_number=STR("Carrier tracking number once the order has shipped."),
    gift_message=STR("Message printed on the packing slip of a gift order.", maxLength=200),
    kind=ENUM("Kind of payment method.", ["credit_card", "paypal", "gift_card"]),
    last4=STR("Last four digits of the card number.", minLength=4, maxLength=4),
    nickname=STR("Name the customer gave the payment method."),
    is_default=BOOL("Whether this payment method is used when none is chosen."),
    product_ids=ARR(ID("product"), "Products of the order being returned.", minItems=1),
    return_reason=ENUM("Why the items are returned.", ["wrong_size", "damaged", "not_as_described", "changed_mind"]),
    refund_amount=MONEY("Amount refunded in USD."),
    query=STR("Free-text search over product names and descriptions."),
    max_price=MONEY("Only products at or below this unit price in USD."),
    in_stock_only=BOOL("Only products with stock on hand.", default=False),
    limit=LIMIT,
)
s.entity("Customer", "A registered customer of the store.",
         ["customer_id", "first_name", "last_name", "email", "phone", "loyalty_tier", "default_address"],
         required=["customer_id", "first_name", "last_name", "email"])
s.entity("Product", "A product in the catalogue.",
         ["product_id", "name", "category", "price", "stock_quantity", "color", "size"],
         required=["product_id", "name", "price", "stock_quantity"])
s.entity("OrderItem", "One line of an order.", ["product_id", "quantity", "unit_price"],
         required=["product_id", "quantity", "unit_price"])
s.entity("Order", "A customer's order.",
         ["order_id", "customer_id", "status", "items", "shipping_address", "payment_method_id", "total_amount",
          "placed_on", "tracking_number", "gift_message"],
         required=["order_id", "customer_id", "status", "items", "total_amount"])
s.entity("PaymentMethod", "A payment method stored on a customer account.",
         ["payment_method_id", "customer_id", "kind", "last4", "nickname", "is_default"],
         required=["payment_method_id", "customer_id", "kind"])
s.entity("Return", "A return request for items of a delivered order.",
         ["return_id", "order_id", "product_ids", "return_reason", "status", "refund_amount", "payment_method_id"],
         required=["return_id", "order_id", "product_ids", "status"],
         status=ENUM("Progress of the return.", ["requested", "approved", "received", "refunded", "rejected"]))

s.tool("find_customer_by_email", "GET /customers", "Look up a customer account by its email address.",
       ["email"], returns="Customer")
s.tool("get_customer", "GET /customers/{customer_id}", "Get a customer's profile, loyalty tier and default address.",
       ["customer_id"], returns="Customer")
s.tool("update_customer_address", "PUT /customers/{customer_id}/address",
       "Replace the default shipping address of a customer.", ["customer_id", "address"], returns="Customer")
s.tool("search_products", "GET /products", "Search the catalogue by text, category and price.",
       [], ["query", "category", "max_price", "in_stock_only", "limit"],
       returns=LIST("products", "Product", "A page of matching products."))
s.tool("get_product", "GET /products/{product_id}", "Get one product with its price and stock level.",
       ["product_id"], returns="Product")
s.tool("list_customer_orders", "GET /customers/{customer_id}/orders",
       "List a customer's orders, newest first, optionally only those in one status.",
       ["customer_id"], ["status", "limit"], returns=LIST("orders", "Order", "A page of the customer's orders."))
s.tool("get_order", "GET /orders/{order_id}", "Get an order with its items, status, payment and tracking number.",
       ["order_id"], returns="Order")
s.tool("create_order", "POST /orders",
       "Place an order for a customer; the items are charged to one of the customer's payment methods.",
       ["customer_id", "items", "payment_method_id"], ["shipping_address", "gift_message"], returns="Order",
       items=ARR(OBJ("A product and how many units of it to order.",
                     {"product_id": ID("product"), "quantity": INT("Number of units to order.", minimum=1, default=1)},
                     ["product_id"]),
                 "Products to order.", minItems=1))
s.tool("update_order_items", "PATCH /orders/{order_id}",
       "Change the items of an order that is still pending; the price difference is charged or refunded.",
       ["order_id", "items"], returns="Order",
       items=ARR(OBJ("A product and its new quantity; quantity 0 removes the line.",
                     {"product_id": ID("product"), "quantity": INT("New number of units.", minimum=0)},
                     ["product_id", "quantity"]),
                 "Lines to change.", minItems=1))
s.tool("cancel_order", "POST /orders/{order_id}/cancel",
       "Cancel a pending or processed order and refund its payment.", ["order_id", "reason"], returns="Order",
       reason=ENUM("Why the order is cancelled.", ["no_longer_needed", "ordered_by_mistake", "found_cheaper", "other"]))
s.tool("list_payment_methods", "GET /customers/{customer_id}/payment-methods",
       "List the payment methods stored on a customer account.", ["customer_id"],
       returns=LIST("payment_methods", "PaymentMethod", "The customer's payment methods."))
s.tool("add_payment_method", "POST /customers/{customer_id}/payment-methods",
       "Store a new payment method on a customer account.", ["customer_id", "kind"], ["last4", "nickname", "is_default"],
       returns="PaymentMethod", is_default=BOOL("Make it the default payment method.", default=False))
s.tool("create_return", "POST /orders/{order_id}/returns",
       "Open a return for some products of a delivered order; the refund goes to the given payment method.",
       ["order_id", "product_ids", "return_reason", "payment_method_id"], returns="Return")
s.tool("get_return", "GET /returns/{return_id}", "Get the progress and refund amount of a return request.",
       ["return_id"], returns="Return")


# ============================================================================ airline booking
s = _add(Service(
    "airline_booking", "openapi-json", title="Skylark Air Reservations API", provider="skylark-air.example",
    categories=["travel"], version="1.8.0", server="https://reservations.skylark-air.example/api",
    description="Flight search, bookings, seats, baggage and check-in for Skylark Air.",
))
s.field(
    flight_id=ID("scheduled flight"),
    passenger_id=ID("passenger profile"),
    booking_id=ID("booking (record locator)"),
    payment_method_id=ID("stored payment method"),
    boarding_pass_id=ID("boarding pass"),
    flight_number=STR("Marketing flight number, e.g. SK204."),
    origin_airport_code=STR("IATA code of the departure airport.", minLength=3, maxLength=3),
    destination_airport_code=STR("IATA code of the arrival airport.", minLength=3, maxLength=3),
    departure_date=DATE("Local date of departure."),
    departure_time=DATETIME("Scheduled departure time."),
    arrival_time=DATETIME("Scheduled arrival time."),
    cabin_class=ENUM("Cabin class.", ["basic_economy", "economy", "premium_economy", "business"], default="economy"),
    seats_available=INT("Seats still for sale in the requested cabin.", minimum=0),
    fare=MONEY("Fare per passenger in USD."),
    stops=INT("Number of stops.", minimum=0),
    max_stops=INT("Only itineraries with at most this many stops.", minimum=0, maximum=2, default=1),
    flight_status=ENUM("Operational status of the flight.", ["scheduled", "boarding", "departed", "delayed", "cancelled", "landed"]),
    gate=STR("Departure gate, when assigned."),
    delay_minutes=INT("Expected delay in minutes.", minimum=0),
    first_name=STR("Given name of the passenger as on the passport."),
    last_name=STR("Family name of the passenger as on the passport."),
    date_of_birth=DATE("Date of birth of the passenger."),
    email=EMAIL("Email address for booking confirmations."),
    frequent_flyer_number=STR("Skylark Miles frequent flyer number."),
    flight_ids=ARR(ID("scheduled flight"), "Flights of the itinerary in travel order.", minItems=1),
    booking_status=ENUM("Status of the booking.", ["confirmed", "ticketed", "changed", "cancelled", "flown"]),
    total_fare=MONEY("Total price of the booking in USD."),
    checked_bags=INT("Checked bags per passenger.", minimum=0, maximum=3, default=0),
    travel_insurance=BOOL("Whether travel insurance is added.", default=False),
    booked_on=DATE("Date the booking was made."),
    seat_number=STR("Seat, e.g. 14C."),
    seat_type=ENUM("Kind of seat.", ["window", "middle", "aisle"]),
    boarding_group=INT("Boarding group printed on the pass.", minimum=1, maximum=6),
    bag_count=INT("Number of bags to add.", minimum=1, maximum=3),
    cancel_reason=ENUM("Why the booking is cancelled.", ["change_of_plans", "flight_delayed", "medical", "other"]),
)
s.entity("Flight", "A scheduled flight with its remaining inventory.",
         ["flight_id", "flight_number", "origin_airport_code", "destination_airport_code", "departure_date",
          "departure_time", "arrival_time", "cabin_class", "seats_available", "fare", "stops"],
         required=["flight_id", "flight_number", "origin_airport_code", "destination_airport_code", "departure_date"])
s.entity("FlightStatus", "Live operational status of a flight.",
         ["flight_id", "flight_number", "flight_status", "gate", "delay_minutes"],
         required=["flight_id", "flight_status"])
s.entity("Passenger", "A passenger profile.",
         ["passenger_id", "first_name", "last_name", "date_of_birth", "email", "frequent_flyer_number",
          "payment_method_id"],
         required=["passenger_id", "first_name", "last_name", "date_of_birth"])
s.entity("Booking", "A booking of one passenger on one or more flights.",
         ["booking_id", "passenger_id", "flight_ids", "cabin_class", "booking_status", "total_fare",
          "payment_method_id", "checked_bags", "travel_insurance", "booked_on"],
         required=["booking_id", "passenger_id", "flight_ids", "booking_status"])
s.entity("SeatAssignment", "A seat held for a passenger on one flight of a booking.",
         ["booking_id", "flight_id", "seat_number", "seat_type"], required=["booking_id", "flight_id", "seat_number"])
s.entity("BoardingPass", "A boarding pass issued at check-in.",
         ["boarding_pass_id", "booking_id", "flight_id", "seat_number", "boarding_group"],
         required=["boarding_pass_id", "booking_id", "flight_id"])

s.tool("search_flights", "GET /flights",
       "Search scheduled flights between two airports on a date, with fares for one cabin class.",
       ["origin_airport_code", "destination_airport_code", "departure_date"], ["cabin_class", "max_stops"],
       returns=LIST("flights", "Flight", "Flights matching the search."))
s.tool("get_flight", "GET /flights/{flight_id}", "Get the schedule, fare and remaining seats of one flight.",
       ["flight_id"], returns="Flight")
s.tool("get_flight_status", "GET /flights/{flight_id}/status", "Get the live status, gate and delay of a flight.",
       ["flight_id"], returns="FlightStatus")
s.tool("get_passenger", "GET /passengers/{passenger_id}", "Get a passenger profile and stored payment method.", ["passenger_id"],
       returns="Passenger")
s.tool("create_passenger", "POST /passengers", "Create a passenger profile from passport details.",
       ["first_name", "last_name", "date_of_birth", "email"], ["frequent_flyer_number"], returns="Passenger")
s.tool("list_passenger_bookings", "GET /passengers/{passenger_id}/bookings",
       "List the bookings of a passenger, optionally only those in one status.",
       ["passenger_id"], ["booking_status"], returns=LIST("bookings", "Booking", "The passenger's bookings."))
s.tool("get_booking", "GET /bookings/{booking_id}", "Get a booking with its flights, fare and extras.",
       ["booking_id"], returns="Booking")
s.tool("book_flight", "POST /bookings",
       "Book one passenger on an itinerary of flights and charge the fare to a stored payment method.",
       ["passenger_id", "flight_ids", "cabin_class", "payment_method_id"], ["checked_bags", "travel_insurance"],
       returns="Booking")
s.tool("change_booking_flights", "PUT /bookings/{booking_id}/flights",
       "Move a booking to other flights on the same route; the fare difference is charged or refunded.",
       ["booking_id", "flight_ids"], ["cabin_class"], returns="Booking")
s.tool("cancel_booking", "POST /bookings/{booking_id}/cancel",
       "Cancel a booking that has not been flown; refunds follow the fare rules.",
       ["booking_id", "cancel_reason"], returns="Booking")
s.tool("select_seat", "PUT /bookings/{booking_id}/seats", "Choose a seat for one flight of a booking.",
       ["booking_id", "flight_id", "seat_number"], returns="SeatAssignment")
s.tool("add_checked_bags", "POST /bookings/{booking_id}/bags", "Add checked bags to a booking.",
       ["booking_id", "bag_count"], returns="Booking")
s.tool("issue_boarding_pass", "POST /bookings/{booking_id}/check-in",
       "Check the passenger of a booking in for one flight and issue a boarding pass.",
       ["booking_id", "flight_id"], returns="BoardingPass")


# ============================================================================ hotel reservations
s = _add(Service(
    "hotel_reservations", "openapi-yaml", title="Harborlight Hotels Booking API", provider="harborlight-hotels.example",
    categories=["travel"], version="3.1.0", server="https://booking.harborlight-hotels.example/v3",
    description="Hotels, room types, availability, guests and reservations of the Harborlight hotel group.",
))
s.field(
    hotel_id=ID("hotel"),
    room_type_id=ID("room type of a hotel"),
    guest_id=ID("guest profile"),
    reservation_id=ID("reservation"),
    review_id=ID("review"),
    hotel_name=STR("Name of the hotel."),
    city=STR("City the hotel is in."),
    star_rating=INT("Official star rating.", minimum=1, maximum=5),
    min_star_rating=INT("Only hotels with at least this star rating.", minimum=1, maximum=5, default=3),
    amenities=ARR(ENUM("An amenity.", ["pool", "gym", "spa", "parking", "breakfast", "pet_friendly", "wifi"]),
                  "Amenities the hotel offers."),
    room_name=STR("Name of the room type, e.g. Deluxe King."),
    bed_type=ENUM("Beds in the room.", ["king", "queen", "twin", "double"]),
    max_occupancy=INT("Most guests the room sleeps.", minimum=1),
    nightly_rate=MONEY("Price per night in USD before taxes."),
    refundable=BOOL("Whether the rate can be cancelled free of charge."),
    rooms_left=INT("Rooms of this type still free for the dates.", minimum=0),
    total_price=MONEY("Total price of the stay in USD, taxes included."),
    full_name=STR("Full name of the guest."),
    email=EMAIL("Email address of the guest."),
    phone=STR("Phone number of the guest."),
    loyalty_number=STR("Harborlight Rewards membership number."),
    check_in_date=DATE("Arrival date."),
    check_out_date=DATE("Departure date."),
    adults=INT("Number of adult guests.", minimum=1, default=2),
    children=INT("Number of children.", minimum=0, default=0),
    reservation_status=ENUM("Status of the reservation.", ["confirmed", "checked_in", "checked_out", "cancelled", "no_show"]),
    special_requests=ARR(STR("A request."), "Free-text requests, e.g. high floor or crib."),
    late_checkout_time=STR("Requested check-out time, HH:MM.", pattern="^[0-2][0-9]:[0-5][0-9]$"),
    rating=INT("Overall rating from 1 to 5.", minimum=1, maximum=5),
    comment=STR("Text of the review."),
    limit=LIMIT,
)
s.entity("Hotel", "A hotel of the group.",
         ["hotel_id", "hotel_name", "city", "star_rating", "amenities"], required=["hotel_id", "hotel_name", "city"])
s.entity("RoomType", "A kind of room a hotel sells.",
         ["room_type_id", "hotel_id", "room_name", "bed_type", "max_occupancy", "nightly_rate", "refundable"],
         required=["room_type_id", "hotel_id", "room_name", "nightly_rate"])
s.entity("Availability", "Availability and price of a room type for a stay.",
         ["hotel_id", "room_type_id", "check_in_date", "check_out_date", "rooms_left", "total_price"],
         required=["hotel_id", "room_type_id", "rooms_left"])
s.entity("Guest", "A guest profile.", ["guest_id", "full_name", "email", "phone", "loyalty_number"],
         required=["guest_id", "full_name", "email"])
s.entity("Reservation", "A reservation of one room for a stay.",
         ["reservation_id", "hotel_id", "room_type_id", "guest_id", "check_in_date", "check_out_date", "adults",
          "children", "reservation_status", "total_price", "special_requests", "late_checkout_time"],
         required=["reservation_id", "hotel_id", "room_type_id", "guest_id", "check_in_date", "check_out_date",
                   "reservation_status"])
s.entity("Review", "A guest's review of a stay.", ["review_id", "hotel_id", "reservation_id", "guest_id", "rating", "comment"],
         required=["review_id", "hotel_id", "guest_id", "rating"])

s.tool("search_hotels", "GET /hotels", "Find hotels in a city by star rating and amenities.",
       ["city"], ["min_star_rating", "amenities", "limit"], returns=LIST("hotels", "Hotel", "Matching hotels."))
s.tool("get_hotel", "GET /hotels/{hotel_id}", "Get a hotel's details and amenities.", ["hotel_id"], returns="Hotel")
s.tool("list_room_types", "GET /hotels/{hotel_id}/room-types",
       "List the room types of a hotel that sleep the given number of adults.",
       ["hotel_id"], ["adults"], returns=LIST("room_types", "RoomType", "Room types of the hotel."))
s.tool("get_room_availability", "GET /hotels/{hotel_id}/room-types/{room_type_id}/availability",
       "Check how many rooms of a type are free for a stay and what the stay costs.",
       ["hotel_id", "room_type_id", "check_in_date", "check_out_date"], returns="Availability")
s.tool("get_guest", "GET /guests/{guest_id}", "Get a guest profile.", ["guest_id"], returns="Guest")
s.tool("create_guest_profile", "POST /guests", "Create a guest profile for booking.",
       ["full_name", "email"], ["phone", "loyalty_number"], returns="Guest")
s.tool("list_guest_reservations", "GET /guests/{guest_id}/reservations",
       "List a guest's reservations, optionally only those in one status.",
       ["guest_id"], ["reservation_status"], returns=LIST("reservations", "Reservation", "The guest's reservations."))
s.tool("get_reservation", "GET /reservations/{reservation_id}", "Get a reservation with its dates, room and price.",
       ["reservation_id"], returns="Reservation")
s.tool("create_reservation", "POST /reservations", "Reserve one room of a room type for a guest's stay.",
       ["hotel_id", "room_type_id", "guest_id", "check_in_date", "check_out_date"],
       ["adults", "children", "special_requests"], returns="Reservation")
s.tool("modify_reservation_dates", "PATCH /reservations/{reservation_id}",
       "Move a confirmed reservation to new dates in the same room type.",
       ["reservation_id", "check_in_date", "check_out_date"], returns="Reservation")
s.tool("cancel_reservation", "DELETE /reservations/{reservation_id}",
       "Cancel a confirmed reservation; refundable rates are refunded in full.", ["reservation_id"],
       returns="Reservation")
s.tool("request_late_checkout", "POST /reservations/{reservation_id}/late-checkout",
       "Ask for a later check-out time on a reservation.", ["reservation_id", "late_checkout_time"],
       returns="Reservation")
s.tool("submit_hotel_review", "POST /hotels/{hotel_id}/reviews", "Review a hotel after a completed stay.",
       ["hotel_id", "reservation_id", "guest_id", "rating"], ["comment"], returns="Review")


# ============================================================================ banking
s = _add(Service(
    "banking", "openai", title="Meridian Community Bank", provider="meridian-bank.example",
    categories=["financial"], description="Accounts, transactions, transfers, payees, bill payments and cards.",
))
s.field(
    customer_id=ID("bank customer"),
    account_id=ID("bank account"),
    transaction_id=ID("posted transaction"),
    transfer_id=ID("transfer"),
    payee_id=ID("saved payee"),
    bill_payment_id=ID("bill payment"),
    card_id=ID("debit or credit card"),
    dispute_id=ID("dispute case"),
    full_name=STR("Full legal name of the customer."),
    email=EMAIL("Email address of the customer."),
    phone=STR("Phone number of the customer."),
    kyc_verified=BOOL("Whether identity verification is complete."),
    account_type=ENUM("Kind of account.", ["checking", "savings", "credit"]),
    currency=STR("ISO 4217 currency code of the account.", minLength=3, maxLength=3),
    balance=NUM("Current balance in the account currency."),
    account_status=ENUM("Status of the account.", ["open", "frozen", "closed"]),
    opened_on=DATE("Date the account was opened."),
    amount=MONEY("Amount in the account currency."),
    direction=ENUM("Whether money left or entered the account.", ["debit", "credit"]),
    merchant_name=STR("Merchant or counterparty shown on the statement."),
    transaction_category=ENUM("Spending category.", ["groceries", "dining", "travel", "utilities", "salary", "transfer", "other"]),
    posted_on=DATE("Date the transaction posted."),
    start_date=DATE("First date of the period, inclusive."),
    end_date=DATE("Last date of the period, inclusive."),
    to_account_id=ID("account the money goes to"),
    memo=STR("Note shown on both statements.", maxLength=140),
    scheduled_date=DATE("Date to execute on; today when omitted."),
    transfer_status=ENUM("Status of the transfer.", ["scheduled", "completed", "cancelled", "failed"]),
    payee_name=STR("Name of the payee, e.g. a utility company."),
    account_number=STR("Account number of the payee at their bank."),
    routing_number=STR("Nine-digit bank routing number.", pattern="^[0-9]{9}$"),
    nickname=STR("Short name for the payee."),
    payment_date=DATE("Date the bill payment is sent."),
    payment_status=ENUM("Status of the bill payment.", ["scheduled", "sent", "cancelled"]),
    card_status=ENUM("Status of the card.", ["active", "frozen", "reported_lost", "closed"]),
    last4=STR("Last four digits of the card number.", minLength=4, maxLength=4),
    daily_limit=MONEY("Daily spending limit in the account currency."),
    dispute_reason=ENUM("Why the transaction is disputed.", ["unauthorized", "duplicate", "not_received", "wrong_amount"]),
    details=STR("What happened, in the customer's words."),
    dispute_status=ENUM("Status of the dispute.", ["open", "under_review", "resolved", "rejected"]),
    limit=INT("Maximum number of transactions to return.", minimum=1, maximum=200, default=50),
)
s.entity("Customer", "A customer of the bank.", ["customer_id", "full_name", "email", "phone", "kyc_verified"],
         required=["customer_id", "full_name"])
s.entity("Account", "A deposit or credit account.",
         ["account_id", "customer_id", "account_type", "currency", "balance", "account_status", "opened_on"],
         required=["account_id", "customer_id", "account_type", "balance"])
s.entity("Transaction", "A posted transaction on an account.",
         ["transaction_id", "account_id", "amount", "direction", "merchant_name", "transaction_category", "posted_on"],
         required=["transaction_id", "account_id", "amount", "direction", "posted_on"])
s.entity("Transfer", "A transfer between two accounts.",
         ["transfer_id", "account_id", "to_account_id", "amount", "memo", "scheduled_date", "transfer_status"],
         required=["transfer_id", "account_id", "to_account_id", "amount", "transfer_status"],
         account_id=ID("bank account the money leaves"))
s.entity("Payee", "A saved payee for bill payments.",
         ["payee_id", "customer_id", "payee_name", "account_number", "routing_number", "nickname"],
         required=["payee_id", "customer_id", "payee_name"])
s.entity("BillPayment", "A payment from an account to a payee.",
         ["bill_payment_id", "account_id", "payee_id", "amount", "payment_date", "payment_status"],
         required=["bill_payment_id", "account_id", "payee_id", "amount", "payment_status"])
s.entity("Card", "A card linked to an account.", ["card_id", "account_id", "last4", "card_status", "daily_limit"],
         required=["card_id", "account_id", "card_status"])
s.entity("Dispute", "A dispute case opened for a transaction.",
         ["dispute_id", "transaction_id", "dispute_reason", "details", "dispute_status"],
         required=["dispute_id", "transaction_id", "dispute_status"])

s.tool("get_customer_profile", "GET", "Get a bank customer's profile and verification status.",
       ["customer_id"], returns="Customer")
s.tool("list_accounts", "GET", "List a customer's accounts, optionally of one type.",
       ["customer_id"], ["account_type"], returns=LIST("accounts", "Account", "The customer's accounts."))
s.tool("get_account_balance", "GET", "Get an account with its current balance and status.", ["account_id"],
       returns="Account")
s.tool("list_transactions", "GET", "List the transactions posted to an account in a date range.",
       ["account_id", "start_date", "end_date"], ["transaction_category", "limit"],
       returns=LIST("transactions", "Transaction", "Transactions in the period, newest first."))
s.tool("get_transaction", "GET", "Get one posted transaction.", ["transaction_id"], returns="Transaction")
s.tool("create_transfer", "POST", "Move money from one account to another now or on a scheduled date.",
       ["account_id", "to_account_id", "amount"], ["memo", "scheduled_date"], returns="Transfer",
       account_id=ID("bank account the money leaves"))
s.tool("list_transfers", "GET", "List the transfers out of an account, optionally only those in one status.",
       ["account_id"], ["transfer_status"], returns=LIST("transfers", "Transfer", "Transfers, newest first."))
s.tool("cancel_transfer", "POST", "Cancel a transfer that is still scheduled.", ["transfer_id"], returns="Transfer")
s.tool("list_payees", "GET", "List the payees a customer has saved.", ["customer_id"],
       returns=LIST("payees", "Payee", "The customer's payees."))
s.tool("add_payee", "POST", "Save a new payee for bill payments.",
       ["customer_id", "payee_name", "account_number", "routing_number"], ["nickname"], returns="Payee")
s.tool("create_bill_payment", "POST", "Pay a saved payee from an account on a date.",
       ["account_id", "payee_id", "amount", "payment_date"], returns="BillPayment")
s.tool("list_cards", "GET", "List the cards linked to an account.", ["account_id"],
       returns=LIST("cards", "Card", "Cards of the account."))
s.tool("update_card_status", "PATCH", "Freeze, unfreeze or report lost a card.", ["card_id", "card_status"],
       returns="Card",
       card_status=ENUM("New status of the card.", ["active", "frozen", "reported_lost"]))
s.tool("update_card_limit", "PATCH", "Change the daily spending limit of a card.", ["card_id", "daily_limit"],
       returns="Card")
s.tool("create_dispute", "POST", "Dispute a posted transaction.", ["transaction_id", "dispute_reason"], ["details"],
       returns="Dispute")


# ============================================================================ telecom plans
s = _add(Service(
    "telecom_plans", "openapi-json", title="Brightwave Mobile Account API", provider="brightwave-mobile.example",
    categories=["telecom"], version="4.0.2", server="https://api.brightwave-mobile.example/account/v4",
    description="Mobile lines, plans, usage, roaming, data top-ups and bills of Brightwave Mobile customers.",
))
s.field(
    customer_id=ID("mobile customer account"),
    line_id=ID("mobile line"),
    plan_id=ID("rate plan"),
    device_id=ID("handset"),
    bill_id=ID("monthly bill"),
    payment_id=ID("bill payment"),
    topup_id=ID("data top-up"),
    payment_method_id=ID("stored payment method"),
    full_name=STR("Name of the account holder."),
    phone_number=STR("Phone number of the line in E.164 format.", pattern="^\\+[1-9][0-9]{7,14}$"),
    account_status=ENUM("Status of the customer account.", ["active", "past_due", "closed"]),
    line_status=ENUM("Status of the line.", ["active", "suspended", "cancelled"]),
    roaming_enabled=BOOL("Whether international roaming is on for the line."),
    plan_name=STR("Marketing name of the plan."),
    monthly_price=MONEY("Monthly price of the plan in USD."),
    data_allowance_gb=INT("Monthly high-speed data in GB; 0 means unlimited.", minimum=0),
    unlimited_talk=BOOL("Whether calls and texts are unlimited."),
    international_included=BOOL("Whether calls to 30 countries are included."),
    max_monthly_price=MONEY("Only plans at or below this monthly price."),
    min_data_gb=INT("Only plans with at least this much data.", minimum=0),
    billing_period=STR("Billing period as YYYY-MM.", pattern="^[0-9]{4}-[0-9]{2}$"),
    data_used_gb=NUM("High-speed data used in the period, GB.", minimum=0),
    minutes_used=INT("Call minutes used in the period.", minimum=0),
    texts_sent=INT("Texts sent in the period.", minimum=0),
    effective=ENUM("When a plan change takes effect.", ["immediately", "next_cycle"], default="next_cycle"),
    suspend_reason=ENUM("Why the line is suspended.", ["lost_device", "stolen_device", "travel", "non_payment"]),
    data_gb=INT("GB of extra data to buy.", minimum=1, maximum=20),
    price=MONEY("Price charged in USD."),
    expires_on=DATE("Date the top-up data expires."),
    period_start=DATE("First day of the billing period."),
    period_end=DATE("Last day of the billing period."),
    amount_due=MONEY("Amount due on the bill in USD."),
    due_date=DATE("Date the bill is due."),
    bill_status=ENUM("Status of the bill.", ["open", "paid", "overdue"]),
    amount=MONEY("Amount paid in USD."),
    paid_on=DATE("Date of the payment."),
    device_model=STR("Make and model of the handset."),
)
s.entity("Customer", "A customer account holding one or more lines.",
         ["customer_id", "full_name", "phone_number", "account_status", "payment_method_id"],
         required=["customer_id", "full_name"],
         phone_number=STR("Primary contact number of the account holder."),
         payment_method_id=ID("payment method used for autopay"))
s.entity("Line", "A mobile line on a customer account.",
         ["line_id", "customer_id", "phone_number", "plan_id", "device_id", "device_model", "line_status",
          "roaming_enabled"],
         required=["line_id", "customer_id", "phone_number", "plan_id", "line_status"])
s.entity("Plan", "A rate plan for sale.",
         ["plan_id", "plan_name", "monthly_price", "data_allowance_gb", "unlimited_talk", "international_included"],
         required=["plan_id", "plan_name", "monthly_price"])
s.entity("Usage", "Usage of a line in one billing period.",
         ["line_id", "billing_period", "data_used_gb", "minutes_used", "texts_sent"], required=["line_id", "billing_period"])
s.entity("TopUp", "Extra data bought for a line.",
         ["topup_id", "line_id", "data_gb", "price", "payment_method_id", "expires_on"],
         required=["topup_id", "line_id", "data_gb", "price"])
s.entity("Bill", "A monthly bill of a customer account.",
         ["bill_id", "customer_id", "period_start", "period_end", "amount_due", "due_date", "bill_status"],
         required=["bill_id", "customer_id", "amount_due", "bill_status"])
s.entity("Payment", "A payment made against a bill.", ["payment_id", "bill_id", "amount", "payment_method_id", "paid_on"],
         required=["payment_id", "bill_id", "amount"])

s.tool("get_customer_account", "GET /customers/{customer_id}", "Get a customer account and its status.",
       ["customer_id"], returns="Customer")
s.tool("find_customer_by_phone", "GET /customers",
       "Find the customer account that holds a line with the given phone number.", ["phone_number"],
       returns="Customer")
s.tool("list_lines", "GET /customers/{customer_id}/lines", "List the lines on a customer account.",
       ["customer_id"], returns=LIST("lines", "Line", "Lines of the account."))
s.tool("get_line", "GET /lines/{line_id}", "Get a line with its plan, device and roaming setting.", ["line_id"],
       returns="Line")
s.tool("get_line_usage", "GET /lines/{line_id}/usage", "Get data, minutes and texts used by a line in a billing period.",
       ["line_id", "billing_period"], returns="Usage")
s.tool("list_plans", "GET /plans", "List the rate plans on sale, filtered by price and data allowance.",
       [], ["max_monthly_price", "min_data_gb"], returns=LIST("plans", "Plan", "Plans on sale."))
s.tool("change_line_plan", "PUT /lines/{line_id}/plan", "Move a line to another rate plan.",
       ["line_id", "plan_id"], ["effective"], returns="Line")
s.tool("suspend_line", "POST /lines/{line_id}/suspend", "Suspend service on a line, e.g. after a device is lost.",
       ["line_id", "suspend_reason"], returns="Line")
s.tool("resume_line", "POST /lines/{line_id}/resume", "Resume service on a suspended line.", ["line_id"],
       returns="Line")
s.tool("set_roaming", "PATCH /lines/{line_id}/roaming", "Turn international roaming on or off for a line.",
       ["line_id", "roaming_enabled"], returns="Line")
s.tool("purchase_data_topup", "POST /lines/{line_id}/topups",
       "Buy extra data for a line, charged to a stored payment method.",
       ["line_id", "data_gb", "payment_method_id"], returns="TopUp")
s.tool("list_bills", "GET /customers/{customer_id}/bills", "List the bills of a customer account.",
       ["customer_id"], ["bill_status"], returns=LIST("bills", "Bill", "Bills, newest first."))
s.tool("get_bill", "GET /bills/{bill_id}", "Get one bill with its period, amount and due date.", ["bill_id"],
       returns="Bill")
s.tool("pay_bill", "POST /bills/{bill_id}/payments", "Pay all or part of a bill with a stored payment method.",
       ["bill_id", "amount", "payment_method_id"], returns="Payment")


# ============================================================================ food delivery
s = _add(Service(
    "food_delivery", "openai", title="Gobble Eats Delivery", provider="gobble-eats.example",
    categories=["food"], description="Restaurants, menus, delivery orders, courier tracking, tips and complaints.",
))
s.field(
    customer_id=ID("customer"),
    restaurant_id=ID("restaurant"),
    menu_item_id=ID("menu item"),
    order_id=ID("delivery order"),
    courier_id=ID("courier"),
    payment_method_id=ID("stored payment method"),
    complaint_id=ID("complaint"),
    rating_id=ID("order rating"),
    restaurant_name=STR("Name of the restaurant."),
    cuisine=ENUM("Cuisine of the restaurant.", ["pizza", "sushi", "thai", "mexican", "indian", "burgers", "vegan"]),
    rating=NUM("Average customer rating from 1 to 5.", minimum=1, maximum=5),
    min_rating=NUM("Only restaurants rated at least this.", minimum=1, maximum=5),
    delivery_fee=MONEY("Delivery fee in USD."),
    is_open=BOOL("Whether the restaurant accepts orders now."),
    open_now=BOOL("Only restaurants that accept orders now.", default=True),
    postal_code=STR("Postal code of the delivery address."),
    item_name=STR("Name of the dish."),
    price=MONEY("Price of the dish in USD."),
    vegetarian=BOOL("Whether the dish is vegetarian."),
    vegetarian_only=BOOL("Only vegetarian dishes.", default=False),
    spice_level=INT("Spiciness from 0 (mild) to 3 (hot).", minimum=0, maximum=3),
    name=STR("Name of the customer."),
    phone=STR("Phone number the courier can call."),
    delivery_address=OBJ("Where the order is delivered.", {
        "street": STR("Street and house number."),
        "postal_code": STR("Postal code."),
        "city": STR("City."),
        "instructions": STR("Notes for the courier, e.g. gate code."),
    }, ["street", "postal_code", "city"]),
    items=ARR(OBJ("A dish and how many of it.", {
        "menu_item_id": ID("menu item"),
        "quantity": INT("Number of portions.", minimum=1, default=1),
        "special_instructions": STR("Notes for the kitchen."),
    }, ["menu_item_id"]), "Dishes of the order.", minItems=1),
    order_status=ENUM("Status of the order.", ["placed", "preparing", "picked_up", "delivered", "cancelled"]),
    subtotal=MONEY("Price of the dishes in USD."),
    tip_amount=MONEY("Tip for the courier in USD."),
    total_amount=MONEY("Total charged in USD."),
    eta_minutes=INT("Estimated minutes until delivery.", minimum=0),
    latitude=NUM("Latitude of the courier.", minimum=-90, maximum=90),
    longitude=NUM("Longitude of the courier.", minimum=-180, maximum=180),
    courier_name=STR("First name of the courier."),
    vehicle=ENUM("How the courier travels.", ["bike", "scooter", "car"]),
    cancel_reason=ENUM("Why the order is cancelled.", ["too_slow", "ordered_by_mistake", "restaurant_closed", "other"]),
    menu_item_ids=ARR(ID("menu item"), "Dishes the complaint is about.", minItems=1),
    issue=ENUM("What went wrong.", ["missing_item", "wrong_item", "cold_food", "late_delivery", "damaged_packaging"]),
    description=STR("What happened, in the customer's words."),
    refund_amount=MONEY("Amount refunded in USD."),
    food_rating=INT("Rating of the food from 1 to 5.", minimum=1, maximum=5),
    delivery_rating=INT("Rating of the delivery from 1 to 5.", minimum=1, maximum=5),
    comment=STR("Optional comment."),
    limit=LIMIT,
)
s.entity("Restaurant", "A restaurant on the platform.",
         ["restaurant_id", "restaurant_name", "cuisine", "rating", "delivery_fee", "is_open", "postal_code"],
         required=["restaurant_id", "restaurant_name", "cuisine"])
s.entity("MenuItem", "A dish on a restaurant's menu.",
         ["menu_item_id", "restaurant_id", "item_name", "price", "vegetarian", "spice_level"],
         required=["menu_item_id", "restaurant_id", "item_name", "price"])
s.entity("Customer", "A customer of the platform.", ["customer_id", "name", "phone", "payment_method_id"],
         required=["customer_id", "name"], payment_method_id=ID("customer's default payment method"))
s.entity("Order", "A delivery order.",
         ["order_id", "customer_id", "restaurant_id", "courier_id", "items", "delivery_address", "order_status",
          "subtotal", "tip_amount", "total_amount", "payment_method_id"],
         required=["order_id", "customer_id", "restaurant_id", "items", "order_status", "total_amount"])
s.entity("Tracking", "Live position of an order on its way.",
         ["order_id", "courier_id", "order_status", "eta_minutes", "latitude", "longitude"],
         required=["order_id", "order_status"])
s.entity("Courier", "A courier delivering orders.", ["courier_id", "courier_name", "vehicle", "rating"],
         required=["courier_id", "courier_name"], rating=NUM("Average courier rating.", minimum=1, maximum=5))
s.entity("Complaint", "A complaint about a delivered order.",
         ["complaint_id", "order_id", "menu_item_ids", "issue", "description", "refund_amount"],
         required=["complaint_id", "order_id", "issue"])
s.entity("OrderRating", "A customer's rating of an order.",
         ["rating_id", "order_id", "courier_id", "food_rating", "delivery_rating", "comment"],
         required=["rating_id", "order_id", "food_rating", "delivery_rating"])

s.tool("search_restaurants", "GET", "Find restaurants that deliver to a postal code, by cuisine and rating.",
       ["postal_code"], ["cuisine", "min_rating", "open_now", "limit"],
       returns=LIST("restaurants", "Restaurant", "Matching restaurants."))
s.tool("get_restaurant", "GET", "Get a restaurant's details, rating and delivery fee.", ["restaurant_id"],
       returns="Restaurant")
s.tool("get_restaurant_menu", "GET", "List the dishes on a restaurant's menu.", ["restaurant_id"], ["vegetarian_only"],
       returns=LIST("menu_items", "MenuItem", "Dishes on the menu."))
s.tool("get_delivery_customer", "GET", "Get a customer's profile and default payment method.", ["customer_id"],
       returns="Customer")
s.tool("list_customer_delivery_orders", "GET", "List a customer's delivery orders, optionally only those in one status.",
       ["customer_id"], ["order_status", "limit"], returns=LIST("orders", "Order", "The customer's orders."))
s.tool("get_delivery_order", "GET", "Get a delivery order with its dishes, status and charges.", ["order_id"], returns="Order")
s.tool("create_delivery_order", "POST", "Order dishes from one restaurant for delivery to an address.",
       ["customer_id", "restaurant_id", "items", "delivery_address", "payment_method_id"], ["tip_amount"],
       returns="Order", tip_amount={**MONEY("Tip for the courier in USD."), "default": 0})
s.tool("update_delivery_order_items", "PATCH", "Replace the dishes of an order the restaurant has not started preparing.",
       ["order_id", "items"], returns="Order")
s.tool("cancel_delivery_order", "POST", "Cancel an order before it is picked up.", ["order_id", "cancel_reason"], returns="Order")
s.tool("get_delivery_tracking", "GET", "Track where an order is and when it will arrive.", ["order_id"],
       returns="Tracking")
s.tool("get_courier", "GET", "Get the courier's name, vehicle and rating.", ["courier_id"], returns="Courier")
s.tool("add_order_tip", "POST", "Add to or change the courier tip of an order.", ["order_id", "tip_amount"],
       returns="Order")
s.tool("create_order_complaint", "POST", "Report a problem with some dishes of a delivered order.",
       ["order_id", "menu_item_ids", "issue"], ["description"], returns="Complaint")
s.tool("create_order_rating", "POST", "Rate the food and the courier of a delivered order.",
       ["order_id", "courier_id", "food_rating", "delivery_rating"], ["comment"], returns="OrderRating")


# ============================================================================ ride hailing
s = _add(Service(
    "ride_hailing", "mcp", title="Zipline Rides", provider="zipline-rides.example", categories=["transport"],
    description="Fare estimates, ride requests, drivers, vehicles, ratings and lost items of Zipline Rides.",
))
_location = {
    "latitude": NUM("Latitude in degrees.", minimum=-90, maximum=90),
    "longitude": NUM("Longitude in degrees.", minimum=-180, maximum=180),
    "address": STR("Street address shown to the driver."),
}
s.field(
    rider_id=ID("rider"),
    driver_id=ID("driver"),
    vehicle_id=ID("vehicle"),
    ride_id=ID("ride"),
    estimate_id=ID("fare estimate"),
    payment_method_id=ID("stored payment method"),
    rating_id=ID("driver rating"),
    report_id=ID("lost item report"),
    name=STR("Name shown to the other party."),
    phone=STR("Phone number in E.164 format."),
    rider_rating=NUM("Average rating the rider received from drivers.", minimum=1, maximum=5),
    driver_rating=NUM("Average rating of the driver.", minimum=1, maximum=5),
    driver_status=ENUM("Availability of the driver.", ["offline", "available", "on_trip"]),
    make=STR("Vehicle manufacturer."),
    model=STR("Vehicle model."),
    license_plate=STR("Licence plate number."),
    color=STR("Colour of the vehicle."),
    seats=INT("Seats for passengers.", minimum=1, maximum=7),
    pickup=OBJ("Where the rider is picked up.", _location, ["latitude", "longitude"]),
    dropoff=OBJ("Where the rider is dropped off.", _location, ["latitude", "longitude"]),
    pickup_latitude=NUM("Latitude of the pickup point.", minimum=-90, maximum=90),
    pickup_longitude=NUM("Longitude of the pickup point.", minimum=-180, maximum=180),
    ride_type=ENUM("Kind of ride.", ["standard", "comfort", "xl", "shared", "green"], default="standard"),
    capacity=INT("Most passengers this ride type carries.", minimum=1),
    eta_minutes=INT("Minutes until a driver could arrive.", minimum=0),
    fare_low=MONEY("Lower bound of the fare in USD."),
    fare_high=MONEY("Upper bound of the fare in USD."),
    expires_at=DATETIME("When the estimate stops being honoured."),
    passenger_count=INT("Number of passengers riding.", minimum=1, maximum=6, default=1),
    ride_status=ENUM("Status of the ride.", ["requested", "driver_assigned", "in_progress", "completed", "cancelled"]),
    final_fare=MONEY("Fare charged after the ride in USD."),
    tip_amount=MONEY("Tip for the driver in USD."),
    requested_at=DATETIME("When the ride was requested."),
    cancel_reason=ENUM("Why the ride is cancelled.", ["driver_too_far", "changed_plans", "wrong_pickup", "other"]),
    stars=INT("Rating from 1 to 5 stars.", minimum=1, maximum=5),
    compliments=ARR(ENUM("A compliment.", ["clean_car", "great_music", "smooth_driving", "friendly", "good_navigation"]),
                    "Compliments for the driver."),
    comment=STR("Optional comment."),
    item_description=STR("What was left behind, e.g. black umbrella."),
    contact_phone=STR("Phone number the driver can call to return the item."),
    report_status=ENUM("Progress of the report.", ["open", "driver_contacted", "returned", "closed"]),
    limit=LIMIT,
)
s.entity("Rider", "A rider account.", ["rider_id", "name", "phone", "rider_rating", "payment_method_id"],
         required=["rider_id", "name"], payment_method_id=ID("rider's default payment method"))
s.entity("Driver", "A driver on the platform.", ["driver_id", "name", "vehicle_id", "driver_rating", "driver_status"],
         required=["driver_id", "name", "vehicle_id"])
s.entity("Vehicle", "A vehicle registered by a driver.", ["vehicle_id", "make", "model", "license_plate", "color", "seats"],
         required=["vehicle_id", "make", "model", "license_plate"])
s.entity("RideOption", "A ride type available at a pickup point.", ["ride_type", "capacity", "eta_minutes"],
         required=["ride_type", "eta_minutes"])
s.entity("FareEstimate", "A fare estimate for a trip, honoured until it expires.",
         ["estimate_id", "ride_type", "pickup", "dropoff", "fare_low", "fare_high", "expires_at"],
         required=["estimate_id", "ride_type", "fare_low", "fare_high"])
s.entity("Ride", "A ride requested by a rider.",
         ["ride_id", "rider_id", "driver_id", "vehicle_id", "estimate_id", "pickup", "dropoff", "ride_type",
          "passenger_count", "ride_status", "final_fare", "tip_amount", "payment_method_id", "requested_at"],
         required=["ride_id", "rider_id", "pickup", "dropoff", "ride_type", "ride_status"])
s.entity("DriverRating", "A rider's rating of a driver for one ride.",
         ["rating_id", "ride_id", "driver_id", "stars", "compliments", "comment"],
         required=["rating_id", "ride_id", "driver_id", "stars"])
s.entity("LostItemReport", "A report of an item left in a vehicle.",
         ["report_id", "ride_id", "driver_id", "item_description", "contact_phone", "report_status"],
         required=["report_id", "ride_id", "item_description", "report_status"])

s.tool("get_rider", "GET", "Get a rider's profile, rating and default payment method.", ["rider_id"], returns="Rider")
s.tool("list_ride_types", "GET", "List the ride types available at a pickup point with their pickup times.",
       ["pickup_latitude", "pickup_longitude"], returns=OBJ("Ride types available at the pickup point.", {
           "ride_options": ARR(REF("RideOption"), "Available ride types."),
       }, ["ride_options"]))
s.tool("get_fare_estimate", "GET", "Estimate the fare of a trip for one ride type.",
       ["pickup", "dropoff", "ride_type"], returns="FareEstimate")
s.tool("create_ride_request", "POST", "Request a ride at an estimated fare; a nearby driver is assigned.",
       ["rider_id", "estimate_id", "pickup", "dropoff", "ride_type"], ["passenger_count", "payment_method_id"],
       returns="Ride")
s.tool("get_ride", "GET", "Get a ride with its driver, vehicle, status and fare.", ["ride_id"], returns="Ride")
s.tool("list_rider_rides", "GET", "List a rider's past and current rides, optionally only those in one status.",
       ["rider_id"], ["ride_status", "limit"], returns=LIST("rides", "Ride", "The rider's rides, newest first."))
s.tool("cancel_ride", "POST", "Cancel a ride before it starts; a fee may apply once a driver is on the way.",
       ["ride_id", "cancel_reason"], returns="Ride")
s.tool("update_ride_destination", "PATCH", "Change the drop-off point of a ride that has not finished.",
       ["ride_id", "dropoff"], returns="Ride")
s.tool("get_driver", "GET", "Get a driver's name, rating and vehicle.", ["driver_id"], returns="Driver")
s.tool("get_vehicle", "GET", "Get a vehicle's make, model, colour and licence plate.", ["vehicle_id"],
       returns="Vehicle")
s.tool("create_driver_rating", "POST", "Rate the driver of a completed ride, with optional compliments.",
       ["ride_id", "driver_id", "stars"], ["compliments", "comment"], returns="DriverRating")
s.tool("add_ride_tip", "POST", "Tip the driver of a completed ride.", ["ride_id", "tip_amount"], returns="Ride")
s.tool("create_lost_item_report", "POST", "Report an item left in the vehicle of a ride.",
       ["ride_id", "item_description", "contact_phone"], returns="LostItemReport")


# ============================================================================ calendar / meetings
s = _add(Service(
    "calendar_meetings", "openapi-yaml", title="Tidewater Calendar API", provider="tidewater-workspace.example",
    categories=["collaboration"], version="1.12.0", server="https://calendar.tidewater-workspace.example/api/v1",
    description="Calendars, events, invitations, free time and meeting rooms of Tidewater Workspace.",
))
s.field(
    user_id=ID("workspace user"),
    calendar_id=ID("calendar"),
    event_id=ID("calendar event"),
    room_id=ID("meeting room"),
    room_booking_id=ID("room booking"),
    display_name=STR("Display name of the user."),
    email=EMAIL("Email address of the user."),
    time_zone=STR("IANA time zone, e.g. Europe/Berlin."),
    calendar_name=STR("Name of the calendar."),
    color=ENUM("Colour the calendar is shown in.", ["blue", "green", "red", "purple", "orange", "grey"], default="blue"),
    title=STR("Title of the event."),
    event_description=STR("Agenda or notes of the event."),
    start_time=DATETIME("Start of the event."),
    end_time=DATETIME("End of the event."),
    location=STR("Where the event takes place, or a video link."),
    attendee_emails=ARR(EMAIL("An attendee."), "Email addresses of the invited attendees."),
    organizer_user_id=ID("user who organises the event"),
    recurrence=ENUM("How the event repeats.", ["none", "daily", "weekly", "monthly"], default="none"),
    reminder_minutes=INT("Minutes before the start to send a reminder.", minimum=0, maximum=10080, default=10),
    event_status=ENUM("Status of the event.", ["confirmed", "tentative", "cancelled"]),
    start_date=DATE("First day of the range."),
    end_date=DATE("Last day of the range."),
    query=STR("Text to match in event titles."),
    notify_attendees=BOOL("Whether attendees are emailed about the change.", default=True),
    attendee_email=EMAIL("Email address of the attendee who answers."),
    response=ENUM("Answer to the invitation.", ["accepted", "declined", "tentative"]),
    duration_minutes=INT("Length of the wanted slot in minutes.", minimum=15, maximum=480, default=30),
    slot_start=DATETIME("Start of a free slot."),
    slot_end=DATETIME("End of a free slot."),
    room_name=STR("Name of the room."),
    building=STR("Building the room is in."),
    capacity=INT("Seats in the room.", minimum=1),
    min_capacity=INT("Only rooms with at least this many seats.", minimum=1, default=4),
    has_video=BOOL("Whether the room has video-conferencing equipment."),
    limit=LIMIT,
)
s.entity("User", "A user of the workspace.", ["user_id", "display_name", "email", "time_zone"],
         required=["user_id", "email"])
s.entity("Calendar", "A calendar owned by a user.", ["calendar_id", "user_id", "calendar_name", "time_zone", "color"],
         required=["calendar_id", "user_id", "calendar_name"])
s.entity("Event", "An event on a calendar.",
         ["event_id", "calendar_id", "title", "event_description", "start_time", "end_time", "location",
          "attendee_emails", "organizer_user_id", "room_id", "recurrence", "reminder_minutes", "event_status"],
         required=["event_id", "calendar_id", "title", "start_time", "end_time", "event_status"])
s.entity("Rsvp", "An attendee's answer to an invitation.", ["event_id", "attendee_email", "response"],
         required=["event_id", "attendee_email", "response"])
s.entity("FreeSlot", "A slot when everyone asked about is free.", ["slot_start", "slot_end"],
         required=["slot_start", "slot_end"])
s.entity("Room", "A bookable meeting room.", ["room_id", "room_name", "building", "capacity", "has_video"],
         required=["room_id", "room_name", "capacity"])
s.entity("RoomBooking", "A room held for an event.", ["room_booking_id", "room_id", "event_id", "start_time", "end_time"],
         required=["room_booking_id", "room_id", "event_id"])

s.tool("get_user", "GET /users/{user_id}", "Get a workspace user's name, email and time zone.", ["user_id"],
       returns="User")
s.tool("list_calendars", "GET /users/{user_id}/calendars", "List the calendars a user owns.", ["user_id"],
       returns=LIST("calendars", "Calendar", "The user's calendars."))
s.tool("create_calendar", "POST /users/{user_id}/calendars", "Create a new calendar for a user.",
       ["user_id", "calendar_name"], ["time_zone", "color"], returns="Calendar")
s.tool("list_events", "GET /calendars/{calendar_id}/events",
       "List the events of a calendar between two dates, optionally matching a text.",
       ["calendar_id", "start_date", "end_date"], ["query", "limit"],
       returns=LIST("events", "Event", "Events in the range, by start time."))
s.tool("get_event", "GET /calendars/{calendar_id}/events/{event_id}", "Get one event with its attendees and room.",
       ["calendar_id", "event_id"], returns="Event")
s.tool("create_event", "POST /calendars/{calendar_id}/events", "Create an event and invite attendees by email.",
       ["calendar_id", "title", "start_time", "end_time"],
       ["attendee_emails", "location", "event_description", "recurrence", "reminder_minutes"], returns="Event")
s.tool("update_event", "PATCH /calendars/{calendar_id}/events/{event_id}",
       "Change the title, time or location of an event.", ["calendar_id", "event_id"],
       ["title", "start_time", "end_time", "location", "notify_attendees"], returns="Event")
s.tool("delete_event", "DELETE /calendars/{calendar_id}/events/{event_id}",
       "Delete an event; attendees are told unless asked otherwise.", ["calendar_id", "event_id"],
       ["notify_attendees"], returns="Event")
s.tool("respond_to_event", "POST /calendars/{calendar_id}/events/{event_id}/rsvp",
       "Accept, decline or tentatively accept an invitation.", ["calendar_id", "event_id", "attendee_email", "response"],
       returns="Rsvp")
s.tool("find_free_slots", "GET /users/{user_id}/free-slots",
       "Find slots of a given length when the user and the other attendees are all free.",
       ["user_id", "start_date", "end_date"], ["duration_minutes", "attendee_emails"],
       returns=OBJ("Free slots in the range.", {"free_slots": ARR(REF("FreeSlot"), "Slots, earliest first.")},
                   ["free_slots"]))
s.tool("search_rooms", "GET /rooms", "Find meeting rooms by size, building and video equipment.",
       [], ["min_capacity", "building", "has_video"], returns=LIST("rooms", "Room", "Matching rooms."))
s.tool("book_room", "POST /rooms/{room_id}/bookings", "Hold a meeting room for the time of an event.",
       ["room_id", "calendar_id", "event_id"], returns="RoomBooking")


# ============================================================================ email / messaging
s = _add(Service(
    "email_messaging", "openai", title="Parcel Mail", provider="parcel-mail.example", categories=["email"],
    description="Mailboxes, folders, messages, drafts and contacts of Parcel Mail.",
))
s.field(
    mailbox_id=ID("mailbox"),
    folder_id=ID("mail folder"),
    message_id=ID("email message"),
    thread_id=ID("conversation thread"),
    draft_id=ID("draft"),
    contact_id=ID("contact"),
    owner_email=EMAIL("Address of the mailbox."),
    display_name=STR("Name shown as the sender."),
    unread_count=INT("Number of unread messages.", minimum=0),
    folder_name=STR("Name of the folder."),
    parent_folder_id=ID("folder the new folder is created in; top level when omitted"),
    sender_email=EMAIL("Address the message came from."),
    recipient_emails=ARR(EMAIL("A recipient."), "Addresses the message is sent to.", minItems=1),
    cc_emails=ARR(EMAIL("A recipient."), "Addresses that receive a copy."),
    subject=STR("Subject line."),
    body=STR("Plain-text body of the message."),
    sent_at=DATETIME("When the message was sent."),
    is_read=BOOL("Whether the message has been read."),
    is_starred=BOOL("Whether the message is starred."),
    labels=ARR(STR("A label."), "Labels on the message."),
    has_attachments=BOOL("Whether the message carries attachments."),
    importance=ENUM("Importance flag.", ["low", "normal", "high"], default="normal"),
    unread_only=BOOL("Only unread messages.", default=False),
    query=STR("Words to search for in subject and body."),
    after_date=DATE("Only messages sent on or after this date."),
    before_date=DATE("Only messages sent before this date."),
    reply_all=BOOL("Reply to every recipient, not just the sender.", default=False),
    permanent=BOOL("Delete for good instead of moving to Trash.", default=False),
    message_count=INT("Number of messages in the thread.", minimum=1),
    contact_name=STR("Name of the contact."),
    contact_email=EMAIL("Email address of the contact."),
    phone=STR("Phone number of the contact."),
    limit=INT("Maximum number of messages to return.", minimum=1, maximum=100, default=25),
)
s.entity("Mailbox", "A user's mailbox.", ["mailbox_id", "owner_email", "display_name", "unread_count"],
         required=["mailbox_id", "owner_email"])
s.entity("Folder", "A folder of a mailbox.", ["folder_id", "mailbox_id", "folder_name", "parent_folder_id", "unread_count"],
         required=["folder_id", "mailbox_id", "folder_name"])
s.entity("Message", "An email message.",
         ["message_id", "mailbox_id", "folder_id", "thread_id", "sender_email", "recipient_emails", "cc_emails",
          "subject", "body", "sent_at", "is_read", "is_starred", "labels", "has_attachments", "importance"],
         required=["message_id", "mailbox_id", "folder_id", "thread_id", "sender_email", "subject"])
s.entity("Thread", "A conversation: a message and its replies.", ["thread_id", "mailbox_id", "subject", "message_count", "messages"],
         required=["thread_id", "subject", "messages"],
         messages=ARR(REF("Message"), "Messages of the thread, oldest first."))
s.entity("Draft", "An unsent draft.", ["draft_id", "mailbox_id", "recipient_emails", "subject", "body"],
         required=["draft_id", "mailbox_id"])
s.entity("Contact", "An address-book contact.", ["contact_id", "mailbox_id", "contact_name", "contact_email", "phone"],
         required=["contact_id", "mailbox_id", "contact_email"])

s.tool("get_mailbox", "GET", "Get a mailbox with its address and unread count.", ["mailbox_id"], returns="Mailbox")
s.tool("list_folders", "GET", "List the folders of a mailbox with their unread counts.", ["mailbox_id"],
       returns=LIST("folders", "Folder", "Folders of the mailbox."))
s.tool("list_messages", "GET", "List the messages in a mailbox folder, newest first.", ["mailbox_id"],
       ["folder_id", "unread_only", "limit"], returns=LIST("messages", "Message", "A page of messages."),
       folder_id=ID("folder to list; the inbox when omitted"))
s.tool("search_messages", "GET", "Search a mailbox by words, sender and date range.", ["mailbox_id", "query"],
       ["sender_email", "after_date", "before_date", "limit"], returns=LIST("messages", "Message", "Matching messages."))
s.tool("get_message", "GET", "Get one message with its full body.", ["message_id"], returns="Message")
s.tool("get_thread", "GET", "Get a whole conversation thread.", ["thread_id"], returns="Thread")
s.tool("send_message", "POST", "Send a new email from a mailbox.", ["mailbox_id", "recipient_emails", "subject", "body"],
       ["cc_emails", "importance"], returns="Message")
s.tool("send_reply", "POST", "Reply to a message in its thread.", ["message_id", "body"], ["reply_all"],
       returns="Message")
s.tool("create_draft", "POST", "Save a draft to finish and send later.", ["mailbox_id"],
       ["recipient_emails", "subject", "body"], returns="Draft")
s.tool("update_message_flags", "PATCH", "Mark a message read or unread, starred or not.", ["message_id"],
       ["is_read", "is_starred"], returns="Message")
s.tool("update_message_folder", "PATCH", "Move a message into another folder of its mailbox.",
       ["message_id", "folder_id"], returns="Message")
s.tool("delete_message", "DELETE", "Delete a message: to Trash, or for good.", ["message_id"], ["permanent"],
       returns=OBJ("Outcome of the deletion.", {
           "message_id": ID("email message"),
           "deleted": BOOL("Whether the message was deleted."),
           "folder_id": ID("folder the message is now in (Trash), absent when deleted for good"),
       }, ["message_id", "deleted"]))
s.tool("create_folder", "POST", "Create a folder in a mailbox.", ["mailbox_id", "folder_name"], ["parent_folder_id"],
       returns="Folder")
s.tool("list_contacts", "GET", "List or search the contacts of a mailbox.", ["mailbox_id"], ["query"],
       returns=LIST("contacts", "Contact", "Matching contacts."),
       query=STR("Words to match in contact names and addresses."))
s.tool("add_contact", "POST", "Add a contact to a mailbox's address book.", ["mailbox_id", "contact_name", "contact_email"],
       ["phone"], returns="Contact")


# ============================================================================ support ticketing
s = _add(Service(
    "support_ticketing", "openapi-json", title="HelpLoop Service Desk API", provider="helploop.example",
    categories=["support"], version="2.0.0", server="https://desk.helploop.example/api/v2",
    description="Tickets, comments, requesters, agents, organisations and knowledge-base articles of HelpLoop.",
))
s.field(
    ticket_id=ID("support ticket"),
    requester_id=ID("requester (end user who raised tickets)"),
    agent_id=ID("support agent"),
    assignee_agent_id=ID("agent the ticket is assigned to"),
    organization_id=ID("customer organisation"),
    comment_id=ID("ticket comment"),
    article_id=ID("knowledge-base article"),
    subject=STR("One-line summary of the issue."),
    ticket_description=STR("Full description of the issue."),
    priority=ENUM("Priority of the ticket.", ["low", "normal", "high", "urgent"], default="normal"),
    ticket_status=ENUM("Status of the ticket.", ["new", "open", "pending", "on_hold", "solved", "closed"]),
    ticket_category=ENUM("Area the issue belongs to.", ["billing", "technical", "account", "feature_request", "other"]),
    tags=ARR(STR("A tag."), "Tags for routing and reporting."),
    created_at=DATETIME("When the ticket was created."),
    sla_due_at=DATETIME("When the next response is due under the SLA."),
    resolution_note=STR("How the issue was solved, shown to the requester."),
    requester_name=STR("Name of the requester."),
    email=EMAIL("Email address of the requester."),
    agent_name=STR("Name of the agent."),
    team=ENUM("Support team.", ["tier1", "tier2", "billing", "engineering"]),
    open_ticket_count=INT("Tickets currently open for the agent.", minimum=0),
    available_only=BOOL("Only agents who are online and below their ticket cap.", default=False),
    organization_name=STR("Name of the organisation."),
    plan_tier=ENUM("Support plan of the organisation.", ["basic", "business", "enterprise"]),
    author_id=ID("agent or requester who wrote the comment"),
    comment_body=STR("Text of the comment."),
    public=BOOL("Whether the requester can see the comment; internal notes are not public.", default=True),
    source_ticket_ids=ARR(ID("support ticket"), "Tickets to merge into this one; they are closed.", minItems=1),
    article_title=STR("Title of the article."),
    article_summary=STR("First paragraph of the article."),
    query=STR("Words to search for in article titles and bodies."),
    limit=LIMIT,
)
s.entity("Ticket", "A support ticket.",
         ["ticket_id", "requester_id", "assignee_agent_id", "organization_id", "subject", "ticket_description",
          "priority", "ticket_status", "ticket_category", "tags", "created_at", "sla_due_at", "resolution_note"],
         required=["ticket_id", "requester_id", "subject", "priority", "ticket_status"])
s.entity("Requester", "An end user who raises tickets.", ["requester_id", "requester_name", "email", "organization_id"],
         required=["requester_id", "email"])
s.entity("Agent", "A support agent.", ["agent_id", "agent_name", "team", "open_ticket_count"],
         required=["agent_id", "agent_name", "team"])
s.entity("Organization", "A customer organisation.", ["organization_id", "organization_name", "plan_tier"],
         required=["organization_id", "organization_name"])
s.entity("Comment", "A comment on a ticket.", ["comment_id", "ticket_id", "author_id", "comment_body", "public", "created_at"],
         required=["comment_id", "ticket_id", "author_id", "comment_body"],
         created_at=DATETIME("When the comment was written."))
s.entity("Article", "A knowledge-base article.", ["article_id", "article_title", "ticket_category", "article_summary"],
         required=["article_id", "article_title"])

s.tool("list_tickets", "GET /tickets", "List tickets filtered by status, priority, assignee or requester.",
       [], ["ticket_status", "priority", "assignee_agent_id", "requester_id", "limit"],
       returns=LIST("tickets", "Ticket", "Matching tickets, newest first."),
       priority=ENUM("Only tickets of this priority.", ["low", "normal", "high", "urgent"]))
s.tool("get_ticket", "GET /tickets/{ticket_id}", "Get a ticket with its status, assignee and SLA deadline.",
       ["ticket_id"], returns="Ticket")
s.tool("create_ticket", "POST /tickets", "Open a ticket on behalf of a requester.",
       ["requester_id", "subject", "ticket_description", "ticket_category"], ["priority", "tags"], returns="Ticket")
s.tool("update_ticket_status", "PATCH /tickets/{ticket_id}/status", "Move a ticket to another status.",
       ["ticket_id", "ticket_status"], ["resolution_note"], returns="Ticket")
s.tool("update_ticket_priority", "PATCH /tickets/{ticket_id}/priority", "Raise or lower the priority of a ticket.",
       ["ticket_id", "priority"], returns="Ticket")
s.tool("assign_ticket", "PUT /tickets/{ticket_id}/assignee", "Assign a ticket to an agent.",
       ["ticket_id", "assignee_agent_id"], returns="Ticket")
s.tool("add_ticket_comment", "POST /tickets/{ticket_id}/comments",
       "Add a public reply or an internal note to a ticket.", ["ticket_id", "author_id", "comment_body"], ["public"],
       returns="Comment")
s.tool("list_ticket_comments", "GET /tickets/{ticket_id}/comments", "List the comments of a ticket, oldest first.",
       ["ticket_id"], returns=LIST("comments", "Comment", "Comments of the ticket."))
s.tool("merge_tickets", "POST /tickets/{ticket_id}/merge", "Merge duplicate tickets into one ticket.",
       ["ticket_id", "source_ticket_ids"], returns="Ticket")
s.tool("get_requester", "GET /requesters/{requester_id}", "Get a requester and their organisation.",
       ["requester_id"], returns="Requester")
s.tool("find_requester_by_email", "GET /requesters", "Find a requester by email address.", ["email"],
       returns="Requester")
s.tool("create_requester", "POST /requesters", "Register an end user so that tickets can be raised for them.",
       ["requester_name", "email"], ["organization_id"], returns="Requester")
s.tool("get_agent", "GET /agents/{agent_id}", "Get an agent's team and current workload.", ["agent_id"],
       returns="Agent")
s.tool("list_agents", "GET /agents", "List agents, optionally of one team or only those available.",
       [], ["team", "available_only"], returns=LIST("agents", "Agent", "Matching agents."))
s.tool("get_organization", "GET /organizations/{organization_id}", "Get an organisation and its support plan.",
       ["organization_id"], returns="Organization")
s.tool("search_knowledge_base", "GET /articles", "Search knowledge-base articles to suggest to a requester.",
       ["query"], ["ticket_category", "limit"], returns=LIST("articles", "Article", "Matching articles."))


# ============================================================================ music streaming
s = _add(Service(
    "music_streaming", "mcp", title="Cadence Music", provider="cadence-music.example", categories=["music"],
    description="Catalogue search, playlists, playback and subscriptions of Cadence Music listeners.",
))
s.field(
    listener_id=ID("listener account"),
    track_id=ID("track"),
    album_id=ID("album"),
    artist_id=ID("artist"),
    playlist_id=ID("playlist"),
    device_id=ID("playback device"),
    subscription_id=ID("subscription"),
    track_title=STR("Title of the track."),
    duration_seconds=INT("Length of the track in seconds.", minimum=1),
    explicit=BOOL("Whether the track has explicit lyrics."),
    explicit_allowed=BOOL("Include tracks with explicit lyrics.", default=True),
    genre=ENUM("Genre.", ["pop", "rock", "hip_hop", "jazz", "classical", "electronic", "folk"]),
    artist_name=STR("Name of the artist."),
    monthly_listeners=INT("Listeners in the last 28 days.", minimum=0),
    album_title=STR("Title of the album."),
    release_date=DATE("Release date of the album."),
    track_ids=ARR(ID("track"), "Tracks, in order.", minItems=1),
    playlist_name=STR("Name of the playlist."),
    playlist_description=STR("Description of the playlist."),
    is_public=BOOL("Whether other listeners can find the playlist.", default=False),
    position=INT("Index to insert at; appended when omitted.", minimum=0),
    is_playing=BOOL("Whether audio is playing."),
    progress_seconds=INT("Position in the current track in seconds.", minimum=0),
    shuffle=BOOL("Whether shuffle is on."),
    repeat_mode=ENUM("Repeat setting.", ["off", "track", "context"]),
    display_name=STR("Name shown on the listener's profile."),
    country=STR("ISO 3166-1 alpha-2 country of the account."),
    tier=ENUM("Subscription tier.", ["free", "individual", "duo", "family", "student"]),
    renews_on=DATE("Date the subscription renews."),
    monthly_price=MONEY("Monthly price in USD."),
    query=STR("Words to match in track, album and artist names."),
    limit=LIMIT,
)
s.entity("Listener", "A listener account.", ["listener_id", "display_name", "country", "subscription_id"],
         required=["listener_id", "display_name"])
s.entity("Track", "A track in the catalogue.",
         ["track_id", "track_title", "artist_id", "album_id", "duration_seconds", "explicit", "genre"],
         required=["track_id", "track_title", "artist_id", "album_id"])
s.entity("Album", "An album and its tracks.", ["album_id", "album_title", "artist_id", "release_date", "track_ids"],
         required=["album_id", "album_title", "artist_id"])
s.entity("Artist", "An artist.", ["artist_id", "artist_name", "genre", "monthly_listeners"],
         required=["artist_id", "artist_name"])
s.entity("Playlist", "A listener's playlist.",
         ["playlist_id", "listener_id", "playlist_name", "playlist_description", "is_public", "track_ids"],
         required=["playlist_id", "listener_id", "playlist_name", "track_ids"],
         track_ids=ARR(ID("track"), "Tracks of the playlist, in order."))
s.entity("PlaybackState", "What a listener is playing and on which device.",
         ["listener_id", "device_id", "track_id", "playlist_id", "is_playing", "progress_seconds", "shuffle", "repeat_mode"],
         required=["listener_id", "is_playing"])
s.entity("Subscription", "A listener's subscription.", ["subscription_id", "listener_id", "tier", "monthly_price", "renews_on"],
         required=["subscription_id", "listener_id", "tier"])

s.tool("search_tracks", "GET", "Search the catalogue for tracks by words and genre.", ["query"],
       ["genre", "explicit_allowed", "limit"], returns=LIST("tracks", "Track", "Matching tracks."))
s.tool("get_track", "GET", "Get a track with its artist, album and length.", ["track_id"], returns="Track")
s.tool("get_album", "GET", "Get an album with its track list.", ["album_id"], returns="Album")
s.tool("get_artist", "GET", "Get an artist's profile.", ["artist_id"], returns="Artist")
s.tool("list_artist_albums", "GET", "List the albums of an artist, newest first.", ["artist_id"], ["limit"],
       returns=LIST("albums", "Album", "The artist's albums."))
s.tool("list_listener_playlists", "GET", "List the playlists a listener owns.", ["listener_id"],
       returns=LIST("playlists", "Playlist", "The listener's playlists."))
s.tool("get_playlist", "GET", "Get a playlist with its tracks.", ["playlist_id"], returns="Playlist")
s.tool("create_playlist", "POST", "Create a playlist for a listener, optionally with first tracks.",
       ["listener_id", "playlist_name"], ["playlist_description", "is_public", "track_ids"], returns="Playlist",
       track_ids=ARR(ID("track"), "Tracks to start the playlist with."))
s.tool("add_tracks_to_playlist", "POST", "Add tracks to a playlist at a position or at the end.",
       ["playlist_id", "track_ids"], ["position"], returns="Playlist")
s.tool("remove_tracks_from_playlist", "DELETE", "Remove every occurrence of the given tracks from a playlist.",
       ["playlist_id", "track_ids"], returns="Playlist")
s.tool("update_playlist_details", "PATCH", "Rename a playlist, change its description or make it public or private.",
       ["playlist_id"], ["playlist_name", "playlist_description", "is_public"], returns="Playlist",
       is_public=BOOL("Whether other listeners can find the playlist."))
s.tool("get_playback_state", "GET", "Get what a listener is playing right now.", ["listener_id"],
       returns="PlaybackState")
s.tool("update_playback", "PUT", "Start playing a track on a device, optionally from a playlist, with shuffle and repeat.",
       ["listener_id", "device_id", "track_id"], ["playlist_id", "shuffle", "repeat_mode"], returns="PlaybackState",
       playlist_id=ID("playlist to continue playing from"))
s.tool("get_listener_subscription", "GET", "Get a listener's subscription tier and renewal date.", ["listener_id"],
       returns="Subscription")
s.tool("update_subscription_tier", "PATCH", "Move a subscription to another tier from the next renewal.",
       ["subscription_id", "tier"], returns="Subscription")


# ============================================================================ library / books
s = _add(Service(
    "library_books", "openapi-yaml", title="Oakridge Public Library API", provider="oakridge-library.example",
    categories=["education", "media"], version="1.4.1", server="https://catalog.oakridge-library.example/api",
    description="Catalogue, copies, loans, holds, fines and branches of the Oakridge public library.",
))
s.field(
    book_id=ID("catalogue title"),
    copy_id=ID("physical copy of a book"),
    member_id=ID("library member"),
    loan_id=ID("loan"),
    hold_id=ID("hold"),
    branch_id=ID("library branch"),
    pickup_branch_id=ID("branch where the member collects the book"),
    fine_payment_id=ID("fine payment"),
    isbn=STR("ISBN-13 of the edition.", pattern="^97[89][0-9]{10}$"),
    title=STR("Title of the book."),
    author_names=ARR(STR("An author."), "Authors of the book."),
    genre=ENUM("Genre of the book.", ["fiction", "mystery", "science_fiction", "biography", "history", "children", "science"]),
    publication_year=INT("Year of publication.", minimum=1450, maximum=2100),
    copy_status=ENUM("Where the copy is.", ["available", "on_loan", "on_hold_shelf", "in_transit", "lost"]),
    shelf_location=STR("Shelf mark, e.g. FIC MOR."),
    member_name=STR("Name of the member."),
    email=EMAIL("Email address of the member."),
    card_expiry_date=DATE("Date the library card expires."),
    fines_due=MONEY("Unpaid fines in USD."),
    max_loans=INT("Most items the member may borrow at once.", minimum=0),
    checkout_date=DATE("Date the copy was borrowed."),
    due_date=DATE("Date the copy is due back."),
    renewals_used=INT("Times the loan has been renewed.", minimum=0, maximum=3),
    loan_status=ENUM("Status of the loan.", ["active", "overdue", "returned", "lost"]),
    condition=ENUM("Condition of the copy when returned.", ["good", "worn", "damaged"], default="good"),
    hold_status=ENUM("Status of the hold.", ["waiting", "ready_for_pickup", "fulfilled", "cancelled", "expired"]),
    queue_position=INT("Members ahead in the queue for this title.", minimum=0),
    amount=MONEY("Amount paid in USD."),
    payment_type=ENUM("How the fine is paid.", ["card", "cash", "waiver"]),
    paid_on=DATE("Date of the payment."),
    branch_name=STR("Name of the branch."),
    branch_address=STR("Street address of the branch."),
    opening_hours=STR("Opening hours, e.g. Mon-Sat 09:00-18:00."),
    query=STR("Words to match in titles and descriptions."),
    author=STR("Name of an author to match."),
    available_only=BOOL("Only titles with a copy on the shelf now.", default=False),
    limit=LIMIT,
)
s.entity("Book", "A title in the catalogue.",
         ["book_id", "isbn", "title", "author_names", "genre", "publication_year"], required=["book_id", "title"])
s.entity("Copy", "A physical copy of a title at a branch.", ["copy_id", "book_id", "branch_id", "copy_status", "shelf_location"],
         required=["copy_id", "book_id", "branch_id", "copy_status"])
s.entity("Member", "A library member.",
         ["member_id", "member_name", "email", "card_expiry_date", "fines_due", "max_loans"],
         required=["member_id", "member_name"])
s.entity("Loan", "A copy lent to a member.",
         ["loan_id", "member_id", "copy_id", "book_id", "checkout_date", "due_date", "renewals_used", "loan_status"],
         required=["loan_id", "member_id", "copy_id", "due_date", "loan_status"])
s.entity("Hold", "A member's place in the queue for a title.",
         ["hold_id", "member_id", "book_id", "pickup_branch_id", "hold_status", "queue_position"],
         required=["hold_id", "member_id", "book_id", "hold_status"])
s.entity("FinePayment", "A payment towards a member's fines.", ["fine_payment_id", "member_id", "amount", "payment_type", "paid_on"],
         required=["fine_payment_id", "member_id", "amount"])
s.entity("Branch", "A branch of the library.", ["branch_id", "branch_name", "branch_address", "opening_hours"],
         required=["branch_id", "branch_name"])

s.tool("search_books", "GET /books", "Search the catalogue by words, author and genre.", [],
       ["query", "author", "genre", "available_only", "limit"], returns=LIST("books", "Book", "Matching titles."))
s.tool("get_book", "GET /books/{book_id}", "Get a title's bibliographic details.", ["book_id"], returns="Book")
s.tool("list_book_copies", "GET /books/{book_id}/copies", "List the copies of a title and where each one is.",
       ["book_id"], ["branch_id"], returns=LIST("copies", "Copy", "Copies of the title."))
s.tool("get_member", "GET /members/{member_id}", "Get a member's card expiry, fines and loan limit.",
       ["member_id"], returns="Member")
s.tool("renew_membership_card", "POST /members/{member_id}/card-renewal",
       "Extend a member's library card to a new expiry date.", ["member_id", "card_expiry_date"], returns="Member",
       card_expiry_date=DATE("New expiry date of the library card."))
s.tool("list_member_loans", "GET /members/{member_id}/loans", "List a member's loans, optionally only those in one status.",
       ["member_id"], ["loan_status"], returns=LIST("loans", "Loan", "The member's loans."))
s.tool("checkout_copy", "POST /loans", "Lend an available copy to a member.", ["member_id", "copy_id"],
       returns="Loan")
s.tool("renew_loan", "POST /loans/{loan_id}/renew", "Extend the due date of an active loan by three weeks.",
       ["loan_id"], returns="Loan")
s.tool("return_loan", "POST /loans/{loan_id}/return", "Check a borrowed copy back in.", ["loan_id"], ["condition"],
       returns="Loan")
s.tool("place_hold", "POST /holds", "Join the queue for a title, to collect at a branch.",
       ["member_id", "book_id", "pickup_branch_id"], returns="Hold")
s.tool("cancel_hold", "DELETE /holds/{hold_id}", "Leave the queue for a title.", ["hold_id"], returns="Hold")
s.tool("list_member_holds", "GET /members/{member_id}/holds", "List a member's holds and queue positions.",
       ["member_id"], returns=LIST("holds", "Hold", "The member's holds."))
s.tool("pay_fine", "POST /members/{member_id}/fine-payments", "Pay or waive part or all of a member's fines.",
       ["member_id", "amount", "payment_type"], returns="FinePayment")
s.tool("list_branches", "GET /branches", "List the branches of the library.", [],
       returns=LIST("branches", "Branch", "All branches."))
s.tool("get_branch", "GET /branches/{branch_id}", "Get a branch's address and opening hours.", ["branch_id"],
       returns="Branch")


# ============================================================================ healthcare appointments
s = _add(Service(
    "healthcare_appointments", "openapi-json", title="Willowbrook Clinic Scheduling API",
    provider="willowbrook-health.example", categories=["healthcare"], version="2.2.0",
    server="https://scheduling.willowbrook-health.example/v2",
    description="Patients, providers, appointment slots, appointments and prescription refills of Willowbrook clinics.",
))
s.field(
    patient_id=ID("patient"),
    provider_id=ID("clinician"),
    primary_provider_id=ID("patient's primary-care clinician"),
    clinic_id=ID("clinic location"),
    slot_id=ID("open appointment slot"),
    appointment_id=ID("appointment"),
    prescription_id=ID("prescription"),
    pharmacy_id=ID("pharmacy"),
    refill_request_id=ID("refill request"),
    first_name=STR("Given name of the patient."),
    last_name=STR("Family name of the patient."),
    date_of_birth=DATE("Date of birth of the patient."),
    phone=STR("Phone number of the patient."),
    email=EMAIL("Email address of the patient."),
    insurance=OBJ("Health insurance of the patient.", {
        "insurer_name": STR("Name of the insurer."),
        "member_number": STR("Member number on the insurance card."),
        "group_number": STR("Group number on the insurance card."),
    }, ["insurer_name", "member_number"]),
    provider_name=STR("Name of the clinician, with title."),
    specialty=ENUM("Specialty of the clinician.", ["family_medicine", "pediatrics", "dermatology", "cardiology",
                                                  "orthopedics", "mental_health"]),
    accepts_new_patients=BOOL("Whether the clinician takes new patients."),
    languages=ARR(STR("A language."), "Languages the clinician speaks."),
    language=STR("Only clinicians who speak this language."),
    clinic_name=STR("Name of the clinic."),
    clinic_address=STR("Street address of the clinic."),
    clinic_phone=STR("Front-desk phone number of the clinic."),
    start_time=DATETIME("Start of the appointment."),
    end_time=DATETIME("End of the appointment."),
    visit_type=ENUM("Kind of visit.", ["new_patient", "follow_up", "annual_physical", "urgent", "telehealth"]),
    start_date=DATE("First day to search."),
    end_date=DATE("Last day to search."),
    reason=STR("Why the patient wants to be seen, in their words."),
    appointment_status=ENUM("Status of the appointment.", ["booked", "checked_in", "completed", "cancelled", "no_show"]),
    cancel_reason=ENUM("Why the appointment is cancelled.", ["feeling_better", "schedule_conflict", "transport", "other"]),
    medication_name=STR("Name and strength of the medication."),
    dosage=STR("How to take it, e.g. 1 tablet twice daily."),
    refills_remaining=INT("Refills left on the prescription.", minimum=0),
    active_only=BOOL("Only prescriptions that can still be filled.", default=True),
    refill_status=ENUM("Status of the refill request.", ["submitted", "approved", "denied", "sent_to_pharmacy"]),
)
s.entity("Patient", "A registered patient.",
         ["patient_id", "first_name", "last_name", "date_of_birth", "phone", "email", "insurance", "primary_provider_id"],
         required=["patient_id", "first_name", "last_name", "date_of_birth"])
s.entity("Provider", "A clinician who sees patients.",
         ["provider_id", "provider_name", "specialty", "clinic_id", "accepts_new_patients", "languages"],
         required=["provider_id", "provider_name", "specialty", "clinic_id"])
s.entity("Clinic", "A clinic location.", ["clinic_id", "clinic_name", "clinic_address", "clinic_phone"],
         required=["clinic_id", "clinic_name"])
s.entity("Slot", "An open slot in a clinician's schedule.",
         ["slot_id", "provider_id", "clinic_id", "start_time", "end_time", "visit_type"],
         required=["slot_id", "provider_id", "start_time", "end_time"],
         start_time=DATETIME("Start of the slot."), end_time=DATETIME("End of the slot."))
s.entity("Appointment", "A booked appointment.",
         ["appointment_id", "patient_id", "provider_id", "clinic_id", "slot_id", "start_time", "visit_type", "reason",
          "appointment_status"],
         required=["appointment_id", "patient_id", "provider_id", "slot_id", "appointment_status"])
s.entity("Prescription", "A prescription written for a patient.",
         ["prescription_id", "patient_id", "provider_id", "medication_name", "dosage", "refills_remaining", "pharmacy_id"],
         required=["prescription_id", "patient_id", "medication_name", "refills_remaining"])
s.entity("RefillRequest", "A request to refill a prescription.",
         ["refill_request_id", "prescription_id", "pharmacy_id", "refill_status"],
         required=["refill_request_id", "prescription_id", "refill_status"])

s.tool("search_providers", "GET /providers", "Find clinicians by specialty, clinic and language.",
       [], ["specialty", "clinic_id", "accepts_new_patients", "language"],
       returns=LIST("providers", "Provider", "Matching clinicians."),
       accepts_new_patients=BOOL("Only clinicians who take new patients.", default=False))
s.tool("get_provider", "GET /providers/{provider_id}", "Get a clinician's specialty, clinic and languages.",
       ["provider_id"], returns="Provider")
s.tool("list_available_slots", "GET /providers/{provider_id}/slots",
       "List a clinician's open slots in a date range, optionally for one kind of visit.",
       ["provider_id", "start_date", "end_date"], ["visit_type"], returns=LIST("slots", "Slot", "Open slots."))
s.tool("get_clinic", "GET /clinics/{clinic_id}", "Get a clinic's address and phone number.", ["clinic_id"],
       returns="Clinic")
s.tool("get_patient", "GET /patients/{patient_id}", "Get a patient's record, insurance and primary clinician.",
       ["patient_id"], returns="Patient")
s.tool("find_patient", "GET /patients", "Find a patient by family name and date of birth.",
       ["last_name", "date_of_birth"], returns=LIST("patients", "Patient", "Matching patients."))
s.tool("register_patient", "POST /patients", "Register a new patient with contact and insurance details.",
       ["first_name", "last_name", "date_of_birth", "phone"], ["email", "insurance"], returns="Patient")
s.tool("update_patient_contact", "PATCH /patients/{patient_id}", "Change a patient's phone, email or insurance.",
       ["patient_id"], ["phone", "email", "insurance"], returns="Patient")
s.tool("book_appointment", "POST /appointments", "Book an open slot for a patient.",
       ["patient_id", "slot_id", "visit_type"], ["reason"], returns="Appointment")
s.tool("get_appointment", "GET /appointments/{appointment_id}", "Get an appointment and its status.",
       ["appointment_id"], returns="Appointment")
s.tool("list_patient_appointments", "GET /patients/{patient_id}/appointments",
       "List a patient's appointments, optionally only those in one status.", ["patient_id"], ["appointment_status"],
       returns=LIST("appointments", "Appointment", "The patient's appointments."))
s.tool("reschedule_appointment", "PUT /appointments/{appointment_id}/slot", "Move an appointment to another open slot.",
       ["appointment_id", "slot_id"], returns="Appointment")
s.tool("cancel_appointment", "POST /appointments/{appointment_id}/cancel", "Cancel a booked appointment.",
       ["appointment_id", "cancel_reason"], returns="Appointment")
s.tool("mark_patient_arrived", "POST /appointments/{appointment_id}/check-in",
       "Check a patient in on arrival for an appointment today.", ["appointment_id"], returns="Appointment")
s.tool("list_prescriptions", "GET /patients/{patient_id}/prescriptions", "List a patient's prescriptions.",
       ["patient_id"], ["active_only"], returns=LIST("prescriptions", "Prescription", "The patient's prescriptions."))
s.tool("request_prescription_refill", "POST /prescriptions/{prescription_id}/refill-requests",
       "Ask for a refill of a prescription, sent to a pharmacy.", ["prescription_id", "pharmacy_id"],
       returns="RefillRequest")


# ============================================================================ real estate
s = _add(Service(
    "real_estate", "openai", title="Keystone Homes Listings", provider="keystone-homes.example",
    categories=["real_estate"], description="Property listings, agents, buyers, viewings, offers and saved searches.",
))
s.field(
    listing_id=ID("property listing"),
    agent_id=ID("real-estate agent"),
    buyer_id=ID("buyer"),
    viewing_id=ID("viewing appointment"),
    offer_id=ID("offer"),
    saved_search_id=ID("saved search"),
    street_address=STR("Street address of the property."),
    city=STR("City the property is in."),
    postal_code=STR("Postal code of the property."),
    property_type=ENUM("Kind of property.", ["house", "apartment", "townhouse", "condo", "land"]),
    listing_type=ENUM("Whether the property is for sale or for rent.", ["sale", "rent"]),
    price=MONEY("Asking price in USD; monthly rent for rentals."),
    min_price=MONEY("Only listings at or above this price."),
    max_price=MONEY("Only listings at or below this price."),
    bedrooms=INT("Number of bedrooms.", minimum=0),
    min_bedrooms=INT("Only listings with at least this many bedrooms.", minimum=0, default=0),
    bathrooms=NUM("Number of bathrooms; 0.5 for a half bath.", minimum=0),
    square_feet=INT("Interior area in square feet.", minimum=0),
    listing_status=ENUM("Status of the listing.", ["active", "under_offer", "sold", "withdrawn"]),
    listed_on=DATE("Date the property was listed."),
    agent_name=STR("Name of the agent."),
    agency=STR("Brokerage the agent works for."),
    phone=STR("Phone number."),
    email=EMAIL("Email address."),
    buyer_name=STR("Name of the buyer."),
    pre_approval_amount=MONEY("Mortgage pre-approval amount in USD."),
    scheduled_date=DATE("Date of the viewing."),
    time_slot=ENUM("Part of the day.", ["morning", "afternoon", "evening"]),
    notes=STR("Notes for the agent."),
    viewing_status=ENUM("Status of the viewing.", ["requested", "confirmed", "completed", "cancelled"]),
    upcoming_only=BOOL("Only viewings today or later.", default=True),
    amount=MONEY("Offered price in USD."),
    financing=ENUM("How the buyer pays.", ["cash", "mortgage", "fha_loan", "va_loan"]),
    closing_date=DATE("Proposed closing date."),
    contingencies=ARR(ENUM("A contingency.", ["inspection", "appraisal", "financing", "home_sale"]),
                      "Conditions the offer depends on."),
    offer_status=ENUM("Status of the offer.", ["submitted", "countered", "accepted", "rejected", "withdrawn"]),
    criteria=OBJ("What the saved search matches.", {
        "city": STR("City to search in."),
        "listing_type": ENUM("For sale or for rent.", ["sale", "rent"]),
        "min_price": MONEY("Lowest price."),
        "max_price": MONEY("Highest price."),
        "min_bedrooms": INT("Fewest bedrooms.", minimum=0),
        "property_types": ARR(ENUM("A kind of property.", ["house", "apartment", "townhouse", "condo", "land"]),
                              "Kinds of property to include."),
    }, ["city"]),
    alert_frequency=ENUM("How often new matches are emailed.", ["instant", "daily", "weekly"], default="weekly"),
    down_payment=MONEY("Down payment in USD."),
    interest_rate=NUM("Annual interest rate in percent.", minimum=0, maximum=25),
    term_years=INT("Loan term in years.", minimum=5, maximum=40, default=30),
    loan_amount=MONEY("Amount borrowed in USD."),
    monthly_payment=MONEY("Monthly principal and interest in USD."),
    limit=LIMIT,
)
s.entity("Listing", "A property listed for sale or rent.",
         ["listing_id", "agent_id", "street_address", "city", "postal_code", "property_type", "listing_type", "price",
          "bedrooms", "bathrooms", "square_feet", "listing_status", "listed_on"],
         required=["listing_id", "agent_id", "city", "listing_type", "price", "listing_status"])
s.entity("Agent", "A listing agent.", ["agent_id", "agent_name", "agency", "phone", "email"],
         required=["agent_id", "agent_name"])
s.entity("Buyer", "A registered buyer or renter.", ["buyer_id", "buyer_name", "email", "phone", "pre_approval_amount"],
         required=["buyer_id", "buyer_name"])
s.entity("Viewing", "A viewing of a listing.",
         ["viewing_id", "listing_id", "buyer_id", "agent_id", "scheduled_date", "time_slot", "notes", "viewing_status"],
         required=["viewing_id", "listing_id", "buyer_id", "scheduled_date", "viewing_status"])
s.entity("Offer", "A buyer's offer on a listing.",
         ["offer_id", "listing_id", "buyer_id", "amount", "financing", "closing_date", "contingencies", "offer_status"],
         required=["offer_id", "listing_id", "buyer_id", "amount", "offer_status"])
s.entity("SavedSearch", "A buyer's saved search with email alerts.",
         ["saved_search_id", "buyer_id", "criteria", "alert_frequency"], required=["saved_search_id", "buyer_id", "criteria"])
s.entity("MortgageEstimate", "A monthly payment estimate.",
         ["price", "down_payment", "loan_amount", "interest_rate", "term_years", "monthly_payment"],
         required=["loan_amount", "monthly_payment"])

s.tool("search_listings", "GET", "Search listings in a city by type, price and bedrooms.", ["city", "listing_type"],
       ["property_type", "min_price", "max_price", "min_bedrooms", "limit"],
       returns=LIST("listings", "Listing", "Matching listings, newest first."))
s.tool("get_listing", "GET", "Get a listing's details and its agent.", ["listing_id"], returns="Listing")
s.tool("get_listing_agent", "GET", "Get a listing agent's contact details.", ["agent_id"], returns="Agent")
s.tool("list_agent_listings", "GET", "List the listings an agent handles, optionally only those in one status.",
       ["agent_id"], ["listing_status"], returns=LIST("listings", "Listing", "The agent's listings."))
s.tool("get_buyer", "GET", "Get a buyer's profile and pre-approval amount.", ["buyer_id"], returns="Buyer")
s.tool("update_buyer_profile", "PATCH", "Change a buyer's contact details or mortgage pre-approval amount.",
       ["buyer_id"], ["email", "phone", "pre_approval_amount"], returns="Buyer")
s.tool("create_viewing", "POST", "Ask the listing agent for a viewing on a date.",
       ["listing_id", "buyer_id", "scheduled_date", "time_slot"], ["notes"], returns="Viewing")
s.tool("cancel_viewing", "POST", "Cancel a requested or confirmed viewing.", ["viewing_id"], returns="Viewing")
s.tool("list_buyer_viewings", "GET", "List a buyer's viewings.", ["buyer_id"], ["upcoming_only"],
       returns=LIST("viewings", "Viewing", "The buyer's viewings, by date."))
s.tool("create_offer", "POST", "Make an offer on a listing for sale.",
       ["listing_id", "buyer_id", "amount", "financing"], ["closing_date", "contingencies"], returns="Offer")
s.tool("get_offer", "GET", "Get an offer and its status.", ["offer_id"], returns="Offer")
s.tool("update_offer_amount", "PATCH", "Change the price of an offer that is submitted or countered.",
       ["offer_id", "amount"], returns="Offer")
s.tool("cancel_offer", "POST", "Withdraw an offer before it is accepted.", ["offer_id"], returns="Offer")
s.tool("create_saved_search", "POST", "Save a search for a buyer and email new matches.", ["buyer_id", "criteria"],
       ["alert_frequency"], returns="SavedSearch")
s.tool("get_mortgage_estimate", "GET", "Estimate the monthly payment of a mortgage for a price and down payment.",
       ["price", "down_payment", "interest_rate"], ["term_years"], returns="MortgageEstimate",
       price=MONEY("Purchase price in USD."))


# ============================================================================ car rental
s = _add(Service(
    "car_rental", "openapi-yaml", title="Roadrunner Car Rental API", provider="roadrunner-rentals.example",
    categories=["travel"], version="5.0.0", server="https://api.roadrunner-rentals.example/v5",
    description="Rental locations, cars, quotes, renters, rentals and damage reports of Roadrunner Car Rental.",
))
s.field(
    location_id=ID("rental location"),
    pickup_location_id=ID("location where the car is collected"),
    dropoff_location_id=ID("location where the car is returned"),
    car_id=ID("rental car"),
    renter_id=ID("renter"),
    rental_id=ID("rental agreement"),
    quote_id=ID("price quote"),
    damage_report_id=ID("damage report"),
    location_name=STR("Name of the location."),
    city=STR("City of the location."),
    airport_code=STR("IATA code when the location is at an airport.", minLength=3, maxLength=3),
    opening_hours=STR("Opening hours, e.g. 06:00-23:00."),
    make=STR("Manufacturer of the car."),
    model=STR("Model of the car."),
    car_class=ENUM("Size class.", ["economy", "compact", "midsize", "suv", "minivan", "luxury"]),
    seats=INT("Number of seats.", minimum=2, maximum=9),
    min_seats=INT("Only cars with at least this many seats.", minimum=2, maximum=9, default=4),
    transmission=ENUM("Gearbox.", ["automatic", "manual"]),
    fuel_type=ENUM("Fuel.", ["petrol", "diesel", "hybrid", "electric"]),
    daily_rate=MONEY("Price per day in USD."),
    pickup_date=DATE("Date the car is collected."),
    return_date=DATE("Date the car is returned."),
    full_name=STR("Full name of the renter."),
    email=EMAIL("Email address of the renter."),
    date_of_birth=DATE("Date of birth of the renter."),
    driver_license_number=STR("Driving licence number."),
    license_expiry_date=DATE("Date the driving licence expires."),
    issuing_country=STR("ISO 3166-1 alpha-2 country that issued the licence.", minLength=2, maxLength=2),
    insurance_option=ENUM("Cover bought with the rental.", ["none", "basic", "full"], default="basic"),
    extras=ARR(ENUM("An extra.", ["child_seat", "gps", "additional_driver", "roof_rack", "snow_chains"]),
               "Extras added to the rental."),
    rental_status=ENUM("Status of the rental.", ["reserved", "active", "returned", "cancelled"]),
    total_price=MONEY("Total price in USD."),
    damage_description=STR("What is damaged and how it happened."),
    severity=ENUM("How serious the damage is.", ["cosmetic", "minor", "major"]),
    photo_urls=ARR(STR("A photo URL.", format="uri"), "Photos of the damage."),
    report_status=ENUM("Status of the damage report.", ["submitted", "assessed", "closed"]),
)
s.entity("Location", "A rental location.", ["location_id", "location_name", "city", "airport_code", "opening_hours"],
         required=["location_id", "location_name", "city"])
s.entity("Car", "A car in the fleet.",
         ["car_id", "location_id", "make", "model", "car_class", "seats", "transmission", "fuel_type", "daily_rate"],
         required=["car_id", "location_id", "car_class", "daily_rate"])
s.entity("Quote", "A price quote for a rental.",
         ["quote_id", "car_id", "pickup_date", "return_date", "insurance_option", "total_price"],
         required=["quote_id", "car_id", "total_price"])
s.entity("Renter", "A renter profile.",
         ["renter_id", "full_name", "email", "date_of_birth", "driver_license_number", "license_expiry_date",
          "issuing_country"],
         required=["renter_id", "full_name", "email"])
s.entity("Rental", "A rental agreement.",
         ["rental_id", "renter_id", "car_id", "pickup_location_id", "dropoff_location_id", "pickup_date", "return_date",
          "insurance_option", "extras", "rental_status", "total_price"],
         required=["rental_id", "renter_id", "car_id", "pickup_location_id", "pickup_date", "return_date",
                   "rental_status"])
s.entity("DamageReport", "A report of damage to a rented car.",
         ["damage_report_id", "rental_id", "car_id", "damage_description", "severity", "photo_urls", "report_status"],
         required=["damage_report_id", "rental_id", "severity", "report_status"])

s.tool("list_rental_locations", "GET /locations", "List rental locations in a city or at an airport.",
       [], ["city", "airport_code"], returns=LIST("locations", "Location", "Matching locations."))
s.tool("search_available_cars", "GET /locations/{location_id}/cars",
       "Find cars free at a location for the rental dates, by class, seats and gearbox.",
       ["location_id", "pickup_date", "return_date"], ["car_class", "min_seats", "transmission"],
       returns=LIST("cars", "Car", "Available cars."))
s.tool("get_car", "GET /cars/{car_id}", "Get a car's model, class and daily rate.", ["car_id"], returns="Car")
s.tool("get_rental_quote", "GET /cars/{car_id}/quote", "Price a rental of a car for dates and a cover option.",
       ["car_id", "pickup_date", "return_date"], ["insurance_option"], returns="Quote")
s.tool("get_renter", "GET /renters/{renter_id}", "Get a renter profile and driving licence details.", ["renter_id"],
       returns="Renter")
s.tool("create_renter", "POST /renters", "Create a renter profile.",
       ["full_name", "email", "date_of_birth", "driver_license_number", "license_expiry_date"], ["issuing_country"],
       returns="Renter")
s.tool("update_driver_license", "PUT /renters/{renter_id}/license", "Replace the driving licence on a renter profile.",
       ["renter_id", "driver_license_number", "license_expiry_date", "issuing_country"], returns="Renter")
s.tool("create_rental", "POST /rentals", "Reserve a car for a renter from one location to another.",
       ["renter_id", "car_id", "pickup_location_id", "dropoff_location_id", "pickup_date", "return_date"],
       ["insurance_option", "extras"], returns="Rental")
s.tool("get_rental", "GET /rentals/{rental_id}", "Get a rental agreement.", ["rental_id"], returns="Rental")
s.tool("list_renter_rentals", "GET /renters/{renter_id}/rentals", "List a renter's rentals, optionally of one status.",
       ["renter_id"], ["rental_status"], returns=LIST("rentals", "Rental", "The renter's rentals."))
s.tool("extend_rental", "PATCH /rentals/{rental_id}", "Move the return date of a reserved or active rental.",
       ["rental_id", "return_date"], returns="Rental")
s.tool("cancel_rental", "POST /rentals/{rental_id}/cancel", "Cancel a reserved rental.", ["rental_id"],
       returns="Rental")
s.tool("report_vehicle_damage", "POST /rentals/{rental_id}/damage-reports", "Report damage to the car of a rental.",
       ["rental_id", "damage_description", "severity"], ["photo_urls"], returns="DamageReport")


# ============================================================================ weather
s = _add(Service(
    "weather", "mcp", title="Nimbus Weather", provider="nimbus-weather.example", categories=["weather"],
    description="Current conditions, forecasts, air quality, alerts and alert subscriptions.",
))
s.field(
    location_id=ID("forecast location"),
    alert_id=ID("weather alert"),
    subscription_id=ID("alert subscription"),
    saved_location_id=ID("saved location"),
    location_name=STR("Name of the place."),
    latitude=NUM("Latitude in degrees.", minimum=-90, maximum=90),
    longitude=NUM("Longitude in degrees.", minimum=-180, maximum=180),
    time_zone=STR("IANA time zone of the place."),
    country_code=STR("ISO 3166-1 alpha-2 country code.", minLength=2, maxLength=2),
    query=STR("Place name or postal code to look up."),
    units=ENUM("Unit system of the values.", ["metric", "imperial"], default="metric"),
    temperature=NUM("Air temperature in the requested units."),
    feels_like=NUM("Apparent temperature in the requested units."),
    humidity_percent=INT("Relative humidity in percent.", minimum=0, maximum=100),
    wind_speed=NUM("Wind speed in km/h (metric) or mph (imperial).", minimum=0),
    condition=ENUM("Weather condition.", ["clear", "partly_cloudy", "cloudy", "rain", "thunderstorm", "snow", "fog"]),
    observed_at=DATETIME("Time of the observation."),
    date=DATE("Calendar date."),
    high=NUM("Highest temperature of the day."),
    low=NUM("Lowest temperature of the day."),
    precipitation_probability=INT("Chance of precipitation in percent.", minimum=0, maximum=100),
    hour=DATETIME("Start of the hour."),
    days=INT("Number of days to forecast.", minimum=1, maximum=14, default=7),
    hours=INT("Number of hours to forecast.", minimum=1, maximum=48, default=24),
    aqi=INT("Air quality index (US EPA scale).", minimum=0, maximum=500),
    dominant_pollutant=ENUM("Pollutant that drives the index.", ["pm2_5", "pm10", "o3", "no2", "so2", "co"]),
    severity=ENUM("Severity of the alert.", ["minor", "moderate", "severe", "extreme"]),
    min_severity=ENUM("Lowest severity to include.", ["minor", "moderate", "severe", "extreme"], default="moderate"),
    event=STR("Kind of event, e.g. Flood Warning."),
    headline=STR("One-line summary of the alert."),
    starts_at=DATETIME("When the alert takes effect."),
    ends_at=DATETIME("When the alert expires."),
    contact_email=EMAIL("Address that receives alert notifications."),
    channels=ARR(ENUM("A channel.", ["email", "sms", "push"]), "Where notifications are sent.", minItems=1),
    label=STR("Name the user gives the place, e.g. Home."),
    precipitation_mm=NUM("Precipitation that fell, in mm.", minimum=0),
    limit=INT("Maximum number of places to return.", minimum=1, maximum=20, default=5),
)
s.entity("Location", "A place weather is reported for.",
         ["location_id", "location_name", "latitude", "longitude", "time_zone", "country_code"],
         required=["location_id", "location_name", "latitude", "longitude"])
s.entity("CurrentConditions", "The latest observation at a place.",
         ["location_id", "temperature", "feels_like", "humidity_percent", "wind_speed", "condition", "units", "observed_at"],
         required=["location_id", "temperature", "condition", "observed_at"])
s.entity("DailyForecast", "Forecast for one day.", ["date", "high", "low", "precipitation_probability", "condition"],
         required=["date", "high", "low"])
s.entity("HourlyForecast", "Forecast for one hour.", ["hour", "temperature", "precipitation_probability", "wind_speed", "condition"],
         required=["hour", "temperature"])
s.entity("AirQuality", "Current air quality at a place.", ["location_id", "aqi", "dominant_pollutant", "observed_at"],
         required=["location_id", "aqi"])
s.entity("Alert", "An official weather alert.",
         ["alert_id", "location_id", "severity", "event", "headline", "starts_at", "ends_at"],
         required=["alert_id", "location_id", "severity", "event"])
s.entity("HistoricalDay", "Observed weather of a past day.", ["location_id", "date", "high", "low", "precipitation_mm", "condition"],
         required=["location_id", "date", "high", "low"])
s.entity("AlertSubscription", "A subscription to alerts for a place.",
         ["subscription_id", "location_id", "contact_email", "min_severity", "channels"],
         required=["subscription_id", "location_id", "contact_email", "min_severity", "channels"])
s.entity("SavedLocation", "A place saved under a label for quick lookup.",
         ["saved_location_id", "location_id", "contact_email", "label"],
         required=["saved_location_id", "location_id", "label"])

s.tool("search_locations", "GET", "Find places by name or postal code.", ["query"], ["country_code", "limit"],
       returns=LIST("locations", "Location", "Matching places, best first."))
s.tool("get_location", "GET", "Get a place's coordinates and time zone.", ["location_id"], returns="Location")
s.tool("get_current_conditions", "GET", "Get the current temperature, wind and condition at a place.",
       ["location_id"], ["units"], returns="CurrentConditions")
s.tool("get_daily_forecast", "GET", "Get the day-by-day forecast for a place.", ["location_id"], ["days", "units"],
       returns=OBJ("Daily forecast of a place.", {
           "location_id": ID("forecast location"),
           "units": ENUM("Unit system of the values.", ["metric", "imperial"]),
           "days": ARR(REF("DailyForecast"), "One entry per day, from today."),
       }, ["location_id", "days"]))
s.tool("get_hourly_forecast", "GET", "Get the hour-by-hour forecast for a place.", ["location_id"], ["hours", "units"],
       returns=OBJ("Hourly forecast of a place.", {
           "location_id": ID("forecast location"),
           "units": ENUM("Unit system of the values.", ["metric", "imperial"]),
           "hours": ARR(REF("HourlyForecast"), "One entry per hour, from now."),
       }, ["location_id", "hours"]))
s.tool("get_air_quality", "GET", "Get the air quality index at a place.", ["location_id"], returns="AirQuality")
s.tool("list_active_alerts", "GET", "List the weather alerts in force at a place.", ["location_id"], ["min_severity"],
       returns=LIST("alerts", "Alert", "Alerts in force, most severe first."))
s.tool("get_alert", "GET", "Get the full text of a weather alert.", ["alert_id"], returns="Alert")
s.tool("get_historical_weather", "GET", "Get the observed weather of a past day at a place.", ["location_id", "date"],
       returns="HistoricalDay")
s.tool("create_alert_subscription", "POST", "Subscribe an address to alerts for a place.",
       ["location_id", "contact_email", "channels"], ["min_severity"], returns="AlertSubscription")
s.tool("list_alert_subscriptions", "GET", "List the alert subscriptions of an address.", ["contact_email"],
       returns=LIST("subscriptions", "AlertSubscription", "The subscriptions."))
s.tool("update_alert_subscription", "PATCH", "Change the severity threshold or channels of a subscription.",
       ["subscription_id"], ["min_severity", "channels"], returns="AlertSubscription",
       min_severity=ENUM("Lowest severity to notify about.", ["minor", "moderate", "severe", "extreme"]))
s.tool("delete_alert_subscription", "DELETE", "Stop alerts of a subscription.", ["subscription_id"],
       returns=OBJ("Outcome of the deletion.", {
           "subscription_id": ID("alert subscription"),
           "deleted": BOOL("Whether the subscription was removed."),
       }, ["subscription_id", "deleted"]))
s.tool("add_saved_location", "POST", "Save a place under a label for an address.",
       ["location_id", "contact_email", "label"], returns="SavedLocation")
